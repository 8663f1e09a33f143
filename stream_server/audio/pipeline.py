"""Provider PCM → seams shaped → resampled → cut into codec frames → encoded chunks.

One `AudioPipeline` per stream (a barge-in starts a fresh one): the resampler, the frame FIFO and
the encoder keep their state across segments, so the audio is one continuous signal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import av
import numpy as np

from ..media import EncodedFrame, PcmChunk
from .encoders import Chunk, make_encoder, silence
from .formats import OutputFormat
from .resampling import Resampler
from .seams import SeamSettings, SegmentShaper


@dataclass(frozen=True, slots=True)
class EncoderSettings:
    opus_bitrate: int = 32000
    # Speech at 32 kbit/s sounds the same at 5 as at 10, and encodes three times faster.
    opus_complexity: int = 5


# Silence pushed through the resampler at a segment's end, in output samples: twice the filter
# delay of swr's default 32-tap filter (16 each side), enough to move the segment's last samples
# out so that a segment's audio is complete when its `segment_end` is sent. Downsampling widens
# the filter, in input samples, by the rate ratio.
RESAMPLER_FLUSH_SAMPLES = 32


def resampler_flush_samples(input_rate: int, output_rate: int) -> int:
    """Input samples of silence that push a segment's end through the resampler's delay."""
    return math.ceil(RESAMPLER_FLUSH_SAMPLES * max(1.0, input_rate / output_rate))


# A codec with a long delay (MP3) needs a few frames of silence to hand a segment's end over.
MAX_DRAIN_FRAMES = 16


class AudioPipeline:
    def __init__(
        self,
        fmt: OutputFormat,
        sample_rate: int,
        frame_ms: int,
        encoder: EncoderSettings | None = None,
        seams: SeamSettings | None = None,
    ) -> None:
        encoder = encoder or EncoderSettings()
        self._format = fmt
        self._rate = sample_rate
        self._encoder = make_encoder(
            fmt,
            sample_rate,
            sample_rate * frame_ms // 1000,
            bitrate=encoder.opus_bitrate,
            complexity=encoder.opus_complexity,
        )
        self._frame_samples = self._encoder.frame_samples
        self._frame_ms = 1000.0 * self._frame_samples / sample_rate
        self._sample_format = self._encoder.sample_format
        self._resampler = Resampler(format=self._sample_format, layout="mono", rate=sample_rate)
        self._input_rate: int | None = None
        self._fifo = av.AudioFifo()
        self._seams = seams or SeamSettings()
        self._shaper: SegmentShaper | None = None
        self._fed = 0
        self._resampler_lag_ms = 0.0
        """Audio the resampler took and has not given back yet (its delay line)."""
        self.sound_end_ms = 0.0
        """Where the last ended segment's sound ended (its trailing silence trimmed), in output
        audio from the pipeline's start, before the pause after it."""

    @property
    def position_ms(self) -> float:
        """Output audio so far (framed, waiting for a frame, or in the resampler's delay line),
        from the pipeline's start: where the next samples pushed begin."""
        return 1000.0 * (self._fed + self._fifo.samples) / self._rate + self._resampler_lag_ms

    @property
    def trimmed_ms(self) -> float | None:
        """The provider's leading silence the current segment's shaper dropped, once it found the
        segment's first sound (None before)."""
        shaper = self._shaper
        if shaper is None or not shaper.started:
            return None
        return 1000.0 * shaper.trimmed / shaper.rate

    @property
    def cheap(self) -> bool:
        """Quick enough to run on the event loop (every format but MP3 and AAC)."""
        return not self._format.encoded_off_loop

    def push(self, chunk: PcmChunk) -> list[EncodedFrame]:
        """Frames completed by this chunk; a remainder waits for more audio or `end_segment`."""
        if self._shaper is None or self._shaper.rate != chunk.sample_rate:
            self._shaper = SegmentShaper(self._seams, chunk.sample_rate)
        self._resample(self._shaper.push(chunk.samples), chunk.sample_rate)
        return self._drain_full_frames()

    def end_segment(self, pause_ms: float = 0.0) -> list[EncodedFrame]:
        """The rest of the segment, then `pause_ms` of silence: all of it out of every delay line.

        The last frame is shortened, or padded where the codec takes only whole frames.
        Resampler and codec keep their state, but the segment's own samples are pushed out of
        their delays with silence, so nothing of this segment waits for the next one, or is
        left behind at the end of the stream.
        """
        if self._shaper is None:
            return []  # nothing was pushed since the last segment end
        rate = self._shaper.rate
        self._resample(self._shaper.end(), rate)
        self._shaper = None
        self.sound_end_ms = self.position_ms
        # Where this segment's sound ends in the encoder's input (the resampler may still hold
        # its last few samples: they come out with the silence below).
        sound_end = self._fed + self._fifo.samples + RESAMPLER_FLUSH_SAMPLES
        pause = max(round(rate * pause_ms / 1000), resampler_flush_samples(rate, self._rate))
        self._resample(np.zeros(pause, dtype=np.float32), rate)
        frames = self._drain_full_frames()
        remainder = self._fifo.read()
        if remainder is not None and remainder.samples:
            if self._format.pad_last_frame:
                padded = silence(self._sample_format, self._frame_samples)
                padded[0, : remainder.samples] = remainder.to_ndarray()[0]
                remainder = self._frame(padded)
            frames += self._encode(remainder)
        for _ in range(MAX_DRAIN_FRAMES):
            if self._encoder.emitted_samples() >= sound_end:
                break
            # The codec still holds some of this segment's sound: silence pushes it out.
            frames += self._encode(self._frame(silence(self._sample_format, self._frame_samples)))
        return frames

    def pause(self, ms: float) -> list[EncodedFrame]:
        """Silence between segments, straight into the frame queue (no trimming, no resampling)."""
        samples = round(self._rate * ms / 1000)
        if samples:
            self._fifo.write(self._frame(silence(self._sample_format, samples)))
        return self._drain_full_frames()

    def finish(self) -> list[EncodedFrame]:
        """End of stream: a container's trailer (e.g. Ogg's end-of-stream page), if it has one.

        Bare codecs have nothing left to say: every segment end already drained them.
        """
        if self._format.container is None:
            return []
        return self._chunks(self._encoder.close())

    def _resample(self, samples: np.ndarray, rate: int) -> None:
        if not len(samples):
            return
        if self._input_rate not in (None, rate):
            # A fallback provider speaks at another rate: finish the old resampler, start anew.
            for resampled in self._resampler.resample(None):
                resampled.pts = None
                self._fifo.write(resampled)
            self._resampler = Resampler(format=self._sample_format, layout="mono", rate=self._rate)
            self._resampler_lag_ms = 0.0
        self._input_rate = rate
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples, dtype=np.float32).reshape(1, -1), format="flt", layout="mono"
        )
        frame.sample_rate = rate
        self._resampler_lag_ms += 1000.0 * len(samples) / rate
        for resampled in self._resampler.resample(frame):
            # The FIFO wants continuous timestamps; the resampler's are irrelevant here.
            resampled.pts = None
            self._fifo.write(resampled)
            self._resampler_lag_ms -= 1000.0 * resampled.samples / self._rate

    def _drain_full_frames(self) -> list[EncodedFrame]:
        frames = self._fifo.samples // self._frame_samples
        if not frames:
            return []
        width = self._encoder.bytes_per_sample
        if width is not None:
            # One encode for the whole run of frames, cut into frames after: the per-call cost
            # is most of the work for raw samples.
            block = self._fifo.read(frames * self._frame_samples)
            assert block is not None  # the FIFO held that much
            data = b"".join(chunk for chunk, _ in self._encoder.encode(block))
            self._fed += block.samples
            step = self._frame_samples * width
            return [EncodedFrame(data[i : i + step], self._frame_ms) for i in range(0, len(data), step)]
        out: list[EncodedFrame] = []
        for _ in range(frames):
            frame = self._fifo.read(self._frame_samples)
            assert frame is not None  # the FIFO held that much
            out += self._encode(frame)
        return out

    def _frame(self, samples: np.ndarray) -> av.AudioFrame:
        frame = av.AudioFrame.from_ndarray(samples, format=self._sample_format, layout="mono")
        frame.sample_rate = self._rate
        return frame

    def _encode(self, frame: av.AudioFrame) -> list[EncodedFrame]:
        self._fed += frame.samples
        return self._chunks(self._encoder.encode(frame))

    def _chunks(self, chunks: list[Chunk]) -> list[EncodedFrame]:
        return [EncodedFrame(data, 1000.0 * samples / self._rate) for data, samples in chunks]
