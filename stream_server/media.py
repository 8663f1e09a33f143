"""Audio as it travels between the packages: PCM from a provider, encoded frames for a client.

The bottom of the import graph: nothing here imports any other stream_server module, so the
providers, the audio pipeline, the protocol and the session share these types without importing
one another. The output format names live here too, for the settings to name a default format
without importing the audio package that implements the formats.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

OutputFormatName = Literal[
    "pcm", "f32", "mulaw", "alaw", "opus", "ogg_opus", "webm_opus", "mp3", "aac", "flac", "wav"
]
OUTPUT_FORMAT_NAMES: tuple[str, ...] = get_args(OutputFormatName)
"""Every output format a stream can ask for (audio.formats.FORMATS describes each)."""


@dataclass(frozen=True, slots=True)
class WordTiming:
    """One word of a segment's text, as written, and when it is heard.

    `text` is the word as the segment's text writes it (`"42"`, `"Dr."`), even where it is spoken
    as several words; `char_start`/`char_end` are its offsets in the text the provider was given.
    Times are milliseconds from the first sample of the segment's audio as the provider yields it
    (the sum of the samples of the chunks before, at their own rate), before any seam trimming,
    pause or resampling: the session moves them onto the stream's timeline. `char_ms` holds the
    start of each character of `text` (same length as `text`), non-decreasing, within
    [start_ms, end_ms].
    """

    text: str
    char_start: int
    char_end: int
    start_ms: float
    end_ms: float
    char_ms: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class PcmChunk:
    """Mono float32 samples in [-1, 1] at `sample_rate` Hz.

    `words`: timings a provider that knows them attaches (see `WordTiming`). Each word of a segment
    rides on exactly one chunk, no later than the chunk holding its first sample, so that a timing
    reaches the session before the audio it describes; providers without timings leave it empty.
    """

    samples: np.ndarray
    sample_rate: int
    words: tuple[WordTiming, ...] = ()

    @property
    def duration_ms(self) -> float:
        return 1000.0 * len(self.samples) / self.sample_rate


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """Bytes to send, and the audio they carry (0 ms for a container header)."""

    data: bytes
    duration_ms: float
