"""The output formats a stream can ask for, and what each allows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PCM_RATES = (8000, 16000, 22050, 24000, 44100, 48000)
OPUS_RATE = 48000
# libopus accepts these frame durations (2.5 and 5 ms exist too, but are not whole ms).
OPUS_FRAME_MS = (10, 20, 40, 60)
MIN_FRAME_MS = 5
MAX_FRAME_MS = 200

Codec = Literal["pcm_s16le", "libopus"]
FormatName = Literal["pcm", "opus"]


@dataclass(frozen=True, slots=True)
class OutputFormat:
    name: str
    codec: Codec
    sample_rates: tuple[int, ...]
    frame_ms_choices: tuple[int, ...] | None
    """None: any whole number of ms in [MIN_FRAME_MS, MAX_FRAME_MS] giving whole samples."""
    pad_last_frame: bool
    """Codecs with fixed frame sizes pad a segment's last frame with silence instead of shortening it."""

    def frame_ms_error(self, sample_rate: int, frame_ms: int) -> str | None:
        if self.frame_ms_choices is not None:
            if frame_ms not in self.frame_ms_choices:
                return f"{self.name} frames must be one of {list(self.frame_ms_choices)} ms"
            return None
        if not MIN_FRAME_MS <= frame_ms <= MAX_FRAME_MS:
            return f"frame_ms must be between {MIN_FRAME_MS} and {MAX_FRAME_MS}"
        if sample_rate * frame_ms % 1000:
            return f"{frame_ms} ms at {sample_rate} Hz is not a whole number of samples"
        return None


FORMATS: dict[str, OutputFormat] = {
    "pcm": OutputFormat("pcm", "pcm_s16le", PCM_RATES, None, pad_last_frame=False),
    "opus": OutputFormat("opus", "libopus", (OPUS_RATE,), OPUS_FRAME_MS, pad_last_frame=True),
}


def get_format(name: str) -> OutputFormat | None:
    return FORMATS.get(name)
