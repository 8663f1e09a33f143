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
class PcmChunk:
    """Mono float32 samples in [-1, 1] at `sample_rate` Hz."""

    samples: np.ndarray
    sample_rate: int

    @property
    def duration_ms(self) -> float:
        return 1000.0 * len(self.samples) / self.sample_rate


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """Bytes to send, and the audio they carry (0 ms for a container header)."""

    data: bytes
    duration_ms: float
