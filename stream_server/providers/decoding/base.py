"""What every decoder shares: the interface, the error, failure bookkeeping, FFmpeg decoding to
mono float32, and trimming of codec delay and padding."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

import av
import numpy as np

from ...audio.resampling import Resampler
from ...media import PcmChunk

MAX_HEADER_BYTES = 1024 * 1024
"""WAV chunks before ``data``, FLAC metadata blocks: skipped without being kept, up to this much."""

MAX_PACKET_BYTES = 1024 * 1024
"""An Ogg packet or a FLAC frame larger than this is corruption (real ones are far smaller)."""

_T = TypeVar("_T")


class DecodeError(Exception):
    """Unknown format, corrupt or truncated stream."""


class StreamingDecoder(Protocol):
    format: str
    """The canonical format name: pcm, wav, mp3, aac, flac or ogg."""

    def feed(self, data: bytes) -> list[PcmChunk]:
        """The audio that `data` completes (possibly none); raises DecodeError on corrupt input."""
        ...

    def close(self) -> list[PcmChunk]:
        """End of input: the rest of the audio; raises DecodeError if the stream is truncated."""
        ...


class IncrementalDecoder:
    """Base of the decoders: subclasses write `_feed` and `_close`; this keeps the contract.

    A decoder that failed stays failed (every later call raises the same DecodeError), and an
    FFmpeg error becomes a DecodeError, so a provider handles one kind of failure.
    """

    format = ""

    def __init__(self) -> None:
        self._fed = 0
        self._closed = False
        self._failure: str | None = None

    def feed(self, data: bytes) -> list[PcmChunk]:
        if self._failure is not None:
            raise DecodeError(self._failure)
        if self._closed:
            raise RuntimeError(f"{self.format} decoder: feed() after close()")
        if not data:
            return []
        self._fed += len(data)
        return self._guard(self._feed, bytes(data))

    def close(self) -> list[PcmChunk]:
        if self._closed:
            return []
        self._closed = True
        if self._failure is not None:
            raise DecodeError(self._failure)
        if not self._fed:
            return []
        return self._guard(self._close)

    def _guard(self, step: Callable[..., _T], *args: object) -> _T:
        try:
            return step(*args)
        except DecodeError as exc:
            self._failure = str(exc)
            raise
        except av.FFmpegError as exc:
            self._failure = f"{self.format}: corrupt stream ({exc})"
            raise DecodeError(self._failure) from exc

    def _feed(self, data: bytes) -> list[PcmChunk]:
        raise NotImplementedError

    def _close(self) -> list[PcmChunk]:
        raise NotImplementedError


class SampleWindow:
    """Keeps the decoded samples at positions [start, end): codec delay and padding trimmed."""

    def __init__(self, start: int = 0, end: int | None = None) -> None:
        self.position = 0
        self.start = start
        self.end = end

    def cut(self, samples: np.ndarray) -> np.ndarray:
        first, self.position = self.position, self.position + len(samples)
        lo = max(first, self.start)
        hi = self.position if self.end is None else min(self.position, self.end)
        return samples[lo - first : hi - first] if hi > lo else samples[:0]


class MonoCodec:
    """An FFmpeg decoder whose frames come out as mono float32 arrays at the codec's rate."""

    def __init__(self, context: av.AudioCodecContext) -> None:
        self.context = context
        self._resampler: Resampler | None = None
        self._resampler_key: tuple[str, str, int] | None = None

    def decode(self, packet: av.Packet | bytes | None) -> list[tuple[np.ndarray, int]]:
        if isinstance(packet, bytes):
            packet = av.Packet(packet)
        return [(self._mono(frame), frame.sample_rate) for frame in self.context.decode(packet)]

    def _mono(self, frame: av.AudioFrame) -> np.ndarray:
        if frame.format.name == "fltp":
            planes = frame.to_ndarray()
        else:
            # Sample format conversion by swresample; channels are kept and averaged below
            # (swresample's own downmix to float has a gain of 0.707 per channel and can clip).
            key = (frame.format.name, frame.layout.name, frame.sample_rate)
            if self._resampler is None or key != self._resampler_key:
                self._resampler = Resampler(format="fltp", layout=frame.layout.name, rate=frame.sample_rate)
                self._resampler_key = key
            converted = self._resampler.resample(frame)
            if not converted:
                return np.zeros(0, dtype=np.float32)
            planes = np.concatenate([f.to_ndarray() for f in converted], axis=1)
        mono = planes[0] if planes.shape[0] == 1 else planes.mean(axis=0, dtype=np.float32)
        return np.clip(mono, -1.0, 1.0).astype(np.float32, copy=False)


def pcm_chunks(decoded: list[tuple[np.ndarray, int]], window: SampleWindow | None = None) -> list[PcmChunk]:
    out = []
    for samples, rate in decoded:
        if window is not None:
            samples = window.cut(samples)
        if len(samples):
            out.append(PcmChunk(np.ascontiguousarray(samples), rate))
    return out
