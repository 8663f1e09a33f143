"""Raw PCM (headerless s16le) and WAV: whole sample frames straight to FFmpeg's PCM decoders."""

from __future__ import annotations

import struct
from typing import cast

import av

from ...media import PcmChunk
from .base import MAX_HEADER_BYTES, DecodeError, IncrementalDecoder, MonoCodec, pcm_chunks


def _pcm_codec(codec_name: str, sample_rate: int, layout: av.AudioLayout | str) -> MonoCodec:
    context = cast(av.AudioCodecContext, av.CodecContext.create(codec_name, "r"))
    context.sample_rate = sample_rate
    context.layout = layout
    return MonoCodec(context)


def _layout_for(channels: int) -> str:
    return {1: "mono", 2: "stereo"}.get(channels, f"{channels} channels")


class _PcmSink:
    """Whole sample frames of a PCM codec go to FFmpeg; a partial one waits for its other bytes."""

    def __init__(self, codec: MonoCodec, block_align: int) -> None:
        self._codec = codec
        self._block_align = block_align
        self._partial = b""

    def feed(self, data: bytes) -> list[PcmChunk]:
        data = self._partial + data if self._partial else data
        whole = len(data) - len(data) % self._block_align
        self._partial = data[whole:]
        return pcm_chunks(self._codec.decode(data[:whole])) if whole else []

    def close(self, what: str) -> list[PcmChunk]:
        if self._partial:
            raise DecodeError(f"{what}: truncated, ends inside a sample ({len(self._partial)} stray bytes)")
        return pcm_chunks(self._codec.decode(None))


class PcmDecoder(IncrementalDecoder):
    format = "pcm"

    def __init__(self, sample_rate: int, channels: int) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.channels = channels
        self._sink = _PcmSink(_pcm_codec("pcm_s16le", sample_rate, _layout_for(channels)), 2 * channels)

    def _feed(self, data: bytes) -> list[PcmChunk]:
        return self._sink.feed(data)

    def _close(self) -> list[PcmChunk]:
        return self._sink.close("pcm")


_WAV_UNKNOWN_SIZE = 0x7FFFF000  # data sizes from here up (and 0) are streaming placeholders


class _HeaderReader:
    """A read-only, non-seekable file over a complete header, for PyAV's demuxer."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size < 0 else self._pos + size
        chunk = self._data[self._pos : end]
        self._pos += len(chunk)
        return chunk


class WavDecoder(IncrementalDecoder):
    format = "wav"

    def __init__(self) -> None:
        super().__init__()
        self._buf = bytearray()
        self._state = "riff"  # riff -> chunk header -> (fmt body | skip) ... -> data -> trailer
        self._skip = 0
        self._fmt_size = 0
        self._fmt: bytes | None = None
        self._header_bytes = 0
        self._data_left: int | None = None
        self._sink: _PcmSink | None = None
        self.sample_rate: int | None = None
        self.channels: int | None = None
        self.codec_name: str | None = None

    def _feed(self, data: bytes) -> list[PcmChunk]:
        if self._state == "data":
            return self._data(data)
        if self._state == "trailer":
            return []
        self._buf += data
        while True:
            if self._state == "riff":
                if len(self._buf) < 12:
                    if self._buf[:4] not in (b"RIFF"[: len(self._buf)], b"RF64"[: len(self._buf)]):
                        raise DecodeError("not a WAV stream (no RIFF header)")
                    return []
                if self._buf[:4] not in (b"RIFF", b"RF64") or self._buf[8:12] != b"WAVE":
                    raise DecodeError("not a WAV stream (no RIFF/WAVE header)")
                self._consume(12)
                self._state = "chunk"
            elif self._state == "skip":
                n = min(self._skip, len(self._buf))
                self._consume(n)
                self._skip -= n
                if self._skip:
                    return []
                self._state = "chunk"
            elif self._state == "fmt":
                if len(self._buf) < self._fmt_size:
                    return []
                self._fmt = bytes(self._buf[: self._fmt_size])
                self._consume(self._fmt_size)
                self._skip = self._fmt_size & 1
                self._state = "skip"
            else:  # chunk header
                if len(self._buf) < 8:
                    return []
                chunk_id = bytes(self._buf[:4])
                (size,) = struct.unpack_from("<I", self._buf, 4)
                self._consume(8)
                if chunk_id == b"data":
                    return self._start_data(size)
                if chunk_id == b"fmt ":
                    if not 16 <= size <= 4096:
                        raise DecodeError(f"WAV fmt chunk of {size} bytes")
                    self._fmt_size = size
                    self._state = "fmt"
                else:
                    if not chunk_id.isascii():
                        raise DecodeError(f"corrupt WAV header (chunk id {chunk_id!r})")
                    self._skip = size + (size & 1)
                    self._state = "skip"

    def _consume(self, n: int) -> None:
        del self._buf[:n]
        self._header_bytes += n
        if self._header_bytes > MAX_HEADER_BYTES:
            raise DecodeError(f"no WAV data chunk in the first {MAX_HEADER_BYTES} bytes")

    def _start_data(self, size: int) -> list[PcmChunk]:
        if self._fmt is None:
            raise DecodeError("WAV data chunk before its fmt chunk")
        self._data_left = None if size == 0 or size >= _WAV_UNKNOWN_SIZE else size
        self._sink = self._open_codec(self._fmt)
        self._state = "data"
        rest, self._buf = bytes(self._buf), bytearray()
        return self._data(rest) if rest else []

    def _open_codec(self, fmt: bytes) -> _PcmSink:
        # PyAV's WAV demuxer interprets the fmt chunk (format tags, WAVE_FORMAT_EXTENSIBLE...),
        # run on a header alone: RIFF, fmt and an open-ended data chunk, no samples.
        header = b"RIFF\xff\xff\xff\xffWAVEfmt " + struct.pack("<I", len(fmt)) + fmt
        header += b"\0" * (len(fmt) & 1) + b"data\xff\xff\xff\xff"
        try:
            with av.open(_HeaderReader(header), format="wav") as container:
                if not container.streams.audio:
                    raise DecodeError("WAV header without an audio stream")
                params = container.streams.audio[0].codec_context
                name, rate, layout = params.name, params.sample_rate, params.layout
        except av.FFmpegError as exc:
            raise DecodeError(f"unreadable WAV fmt chunk ({exc})") from exc
        (block_align,) = struct.unpack_from("<H", fmt, 12)
        if not name.startswith("pcm_"):
            raise DecodeError(f"unsupported WAV codec {name}: only PCM")
        if not rate or not block_align or block_align % layout.nb_channels:
            raise DecodeError(f"bad WAV fmt chunk: {rate} Hz, block align {block_align}")
        self.sample_rate, self.channels, self.codec_name = rate, layout.nb_channels, name
        return _PcmSink(_pcm_codec(name, rate, layout), block_align)

    def _data(self, data: bytes) -> list[PcmChunk]:
        assert self._sink is not None
        if self._data_left is not None:
            data = data[: self._data_left]
            self._data_left -= len(data)
            if not self._data_left:
                self._state = "trailer"
        return self._sink.feed(data)

    def _close(self) -> list[PcmChunk]:
        if self._sink is None:
            raise DecodeError("WAV stream truncated: it ends inside its header")
        if self._data_left:
            raise DecodeError(f"WAV stream truncated: {self._data_left} bytes of its data chunk missing")
        return self._sink.close("wav")
