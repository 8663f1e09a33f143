"""Frame encoders: one fixed-duration PyAV frame in, zero or more encoded payloads out."""

from __future__ import annotations

from fractions import Fraction
from typing import Protocol

import av


class FrameEncoder(Protocol):
    lookahead_samples: int
    """Input samples the codec holds back before they appear in an output payload."""

    def encode(self, frame: av.AudioFrame) -> list[bytes]: ...


class PcmEncoder:
    """s16le mono, no header: the frame's samples as they are."""

    lookahead_samples = 0

    def encode(self, frame: av.AudioFrame) -> list[bytes]:
        return [frame.to_ndarray().tobytes()]


class OpusEncoder:
    """Raw Opus packets (no container), one per frame, as WebCodecs' AudioDecoder takes them."""

    # libopus's algorithmic delay at 48 kHz (what it reports as its pre-skip): 6.5 ms.
    lookahead_samples = 312

    def __init__(self, sample_rate: int, frame_ms: int, bitrate: int) -> None:
        context = av.CodecContext.create("libopus", "w")
        context.sample_rate = sample_rate
        context.layout = "mono"
        context.format = "s16"
        context.bit_rate = bitrate
        context.time_base = Fraction(1, sample_rate)
        # TTS output is clean, full-band speech: the "audio" mode keeps it closest to the input.
        context.options = {"application": "audio", "frame_duration": str(frame_ms)}
        context.open()
        self._context = context
        self._pts = 0

    def encode(self, frame: av.AudioFrame) -> list[bytes]:
        frame.pts = self._pts
        self._pts += frame.samples
        return [bytes(packet) for packet in self._context.encode(frame)]
