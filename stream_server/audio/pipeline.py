"""Provider PCM → resampled → cut into frames of `frame_ms` → encoded payloads.

One `AudioPipeline` per stream: the resampler, the frame FIFO and the encoder keep their state
across segments, so a stream is one continuous signal and never restarts mid-way.
"""

from __future__ import annotations

from dataclasses import dataclass

import av
import numpy as np

from ..providers.base import PcmChunk
from .encoders import FrameEncoder, OpusEncoder, PcmEncoder
from .formats import OutputFormat


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    data: bytes
    duration_ms: float


class AudioPipeline:
    def __init__(self, fmt: OutputFormat, sample_rate: int, frame_ms: int, opus_bitrate: int) -> None:
        self._format = fmt
        self._rate = sample_rate
        self._frame_samples = sample_rate * frame_ms // 1000
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=sample_rate)
        self._fifo = av.AudioFifo()
        self._encoder: FrameEncoder
        if fmt.codec == "libopus":
            self._encoder = OpusEncoder(sample_rate, frame_ms, opus_bitrate)
        else:
            self._encoder = PcmEncoder()
        self._finished = False

    def push(self, chunk: PcmChunk) -> list[EncodedFrame]:
        """Frames completed by this chunk; a remainder waits for more audio or `end_segment`."""
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(chunk.samples, dtype=np.float32).reshape(1, -1),
            format="flt",
            layout="mono",
        )
        frame.sample_rate = chunk.sample_rate
        for resampled in self._resampler.resample(frame):
            self._write_fifo(resampled)
        return self._drain_full_frames()

    def end_segment(self) -> list[EncodedFrame]:
        """The segment's last, partial frame: shortened, or padded where the codec needs it."""
        return self._drain_partial_frame()

    def finish(self) -> list[EncodedFrame]:
        """End of stream: flush the resampler and the codec."""
        if self._finished:
            return []
        self._finished = True
        for resampled in self._resampler.resample(None):
            self._write_fifo(resampled)
        frames = self._drain_full_frames() + self._drain_partial_frame()
        frames += [self._frame(p, self._frame_samples) for p in self._encoder.finish()]
        return frames

    def _write_fifo(self, frame: av.AudioFrame) -> None:
        # The FIFO wants continuous timestamps; the resampler's are irrelevant here.
        frame.pts = None
        self._fifo.write(frame)

    def _drain_full_frames(self) -> list[EncodedFrame]:
        out: list[EncodedFrame] = []
        while (frame := self._fifo.read(self._frame_samples)) is not None:
            out += self._encode(frame)
        return out

    def _drain_partial_frame(self) -> list[EncodedFrame]:
        remainder = self._fifo.read()
        if remainder is None or remainder.samples == 0:
            return []
        if self._format.pad_last_frame:
            samples = np.zeros((1, self._frame_samples), dtype=np.int16)
            samples[0, : remainder.samples] = remainder.to_ndarray()[0]
            remainder = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
            remainder.sample_rate = self._rate
        return self._encode(remainder)

    def _encode(self, frame: av.AudioFrame) -> list[EncodedFrame]:
        return [self._frame(payload, frame.samples) for payload in self._encoder.encode(frame)]

    def _frame(self, payload: bytes, samples: int) -> EncodedFrame:
        return EncodedFrame(payload, 1000.0 * samples / self._rate)
