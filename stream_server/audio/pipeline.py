"""Provider PCM → resampled → cut into frames of `frame_ms` → encoded payloads.

One `AudioPipeline` per stream (a barge-in starts a fresh one): the resampler, the frame FIFO and
the encoder keep their state across segments, so the audio is one continuous signal.
"""

from __future__ import annotations

import math
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


# Silence pushed through the resampler at a segment's end, in output samples: twice the filter
# delay of swr's default 32-tap filter (16 each side), enough to move the segment's last samples
# out so that a segment's audio is complete when its `segment_end` is sent. Downsampling widens
# the filter, in input samples, by the rate ratio.
RESAMPLER_FLUSH_SAMPLES = 32


def resampler_flush_samples(input_rate: int, output_rate: int) -> int:
    """Input samples of silence that push a segment's end through the resampler's delay."""
    return math.ceil(RESAMPLER_FLUSH_SAMPLES * max(1.0, input_rate / output_rate))


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
        self._segment_input_rate: int | None = None

    def push(self, chunk: PcmChunk) -> list[EncodedFrame]:
        """Frames completed by this chunk; a remainder waits for more audio or `end_segment`."""
        self._resample(chunk.samples, chunk.sample_rate)
        self._segment_input_rate = chunk.sample_rate
        return self._drain_full_frames()

    def end_segment(self) -> list[EncodedFrame]:
        """The rest of the segment: its last frame is shortened, or padded where the codec needs it.

        Resampler and codec keep their state (the stream stays one continuous signal), but the
        segment's own samples are all pushed out of their delay lines with a little silence,
        so nothing of this segment waits for the next one, or is left behind at the end.
        """
        if self._segment_input_rate is None:
            return []  # nothing was pushed since the last segment end
        flush = resampler_flush_samples(self._segment_input_rate, self._rate)
        self._resample(np.zeros(flush, dtype=np.float32), self._segment_input_rate)
        self._segment_input_rate = None
        frames = self._drain_full_frames()
        remainder = self._fifo.read()
        real = remainder.samples if remainder is not None else 0
        if remainder is not None and real and not self._format.pad_last_frame:
            return frames + self._encode(remainder)
        padding = 0
        if remainder is not None and real:
            padded = np.zeros((1, self._frame_samples), dtype=np.int16)
            padded[0, :real] = remainder.to_ndarray()[0]
            frames += self._encode(self._s16_frame(padded))
            padding = self._frame_samples - real
        if padding < self._encoder.lookahead_samples:
            # The codec still holds real samples in its lookahead: one frame of silence frees them.
            frames += self._encode(self._s16_frame(np.zeros((1, self._frame_samples), dtype=np.int16)))
        return frames

    def _resample(self, samples: np.ndarray, rate: int) -> None:
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples, dtype=np.float32).reshape(1, -1), format="flt", layout="mono"
        )
        frame.sample_rate = rate
        for resampled in self._resampler.resample(frame):
            # The FIFO wants continuous timestamps; the resampler's are irrelevant here.
            resampled.pts = None
            self._fifo.write(resampled)

    def _drain_full_frames(self) -> list[EncodedFrame]:
        out: list[EncodedFrame] = []
        while (frame := self._fifo.read(self._frame_samples)) is not None:
            out += self._encode(frame)
        return out

    def _s16_frame(self, samples: np.ndarray) -> av.AudioFrame:
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = self._rate
        return frame

    def _encode(self, frame: av.AudioFrame) -> list[EncodedFrame]:
        duration_ms = 1000.0 * frame.samples / self._rate
        return [EncodedFrame(payload, duration_ms) for payload in self._encoder.encode(frame)]
