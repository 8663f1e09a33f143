"""Incremental decoding of what cloud TTS providers send: bytes in as they arrive, PCM out at once.

Sans I/O: a decoder is fed byte chunks of any size (down to one byte) with `feed()` and returns the
`PcmChunk`s (mono float32 in [-1, 1]) that those bytes completed; `close()` marks the end of the
input, flushes what is buffered and raises `DecodeError` for a stream that ends truncated. Nothing
blocks, nothing runs in a thread, and memory stays bounded however long the stream is: only an
incomplete header, page or frame is ever buffered.

    decoder = decoder_for_mime(response.headers["content-type"])
    async for data in response.aiter_bytes():
        for chunk in decoder.feed(data):
            yield chunk
    for chunk in decoder.close():
        yield chunk

All decoding and sample-format conversion is done by PyAV (FFmpeg). What this module does itself
is only *framing*: finding where a container's header ends and where one codec packet ends, so that
each packet goes to an FFmpeg decoder the moment its last byte arrives.

Why not simply run PyAV's demuxer (`av.open`) on the incoming bytes? It pulls its input through a
blocking `read()`: when the bytes that have arrived run out, `read()` must either block (so the
demuxer needs a thread of its own, per stream, that can be left hanging on an abandoned stream) or
return b"" -- which FFmpeg takes for the end of the file and never reads again. So per format:

- ``pcm`` / ``l16``: headerless s16le. The bytes go straight to FFmpeg's ``pcm_s16le`` decoder, in
  whole sample frames (a partial sample waits for its other byte). Output latency: one sample.
- ``wav``: a minimal walk of the RIFF chunks (12-byte RIFF header, then 8-byte chunk headers) finds
  ``fmt `` and the start of ``data``; other chunks (LIST, fact, JUNK...) are skipped without being
  kept. The ``fmt `` chunk is interpreted by PyAV's own WAV demuxer (run on a synthesized header
  only, so it never waits for data): it names the codec (any ``pcm_*``: integer, float, A-law,
  mu-law, WAVE_FORMAT_EXTENSIBLE...), rate and channels; the data bytes then go to that codec as
  in ``pcm``. A ``data`` size of 0 or 0xFFFFFFFF (and RIFF/RF64 placeholders >= 0x7FFFF000), as
  streaming encoders write, means "until the end of the input"; a real size is obeyed and
  whatever follows the data (trailing chunks) is ignored. Output latency: the header, then one
  sample frame.
- ``mp3`` and ``aac`` (ADTS): elementary streams; FFmpeg's own parsers (`CodecContext.parse()`)
  cut them into frames, each emitted as soon as it is complete (its header gives its length).
  A leading ID3v2 tag is skipped. For MP3, a Xing/Info/VBRI header frame is dropped (it is
  metadata, not audio) and its LAME tag, when present, gives the encoder delay and padding, which
  are trimmed as FFmpeg's MP3 demuxer does (gapless). Output latency: one frame (MP3: 1152
  samples, 576 below 32 kHz; AAC: 1024 samples), plus the decoder's own delay (MP3: 529 samples
  output as leading silence unless a LAME tag says otherwise; AAC: the encoder's priming, 1024
  samples for FFmpeg's encoder, is not signalled in ADTS and stays).
- ``flac``: FFmpeg's FLAC parser is not usable incrementally: it holds at least ten frames before
  it outputs one (about a second of audio) and, driven through `parse()`, it loses frames (it
  expects to be called again without new input). So the ``fLaC`` marker and metadata blocks are
  walked here (STREAMINFO becomes the decoder's extradata; other blocks, e.g. pictures, are
  skipped without being kept), and frames are delimited by the next frame header: a sync code
  whose header has a valid CRC-8, the stream's rate, channel count and sample size, and the next
  frame (or sample) number. Only then is a frame handed to FFmpeg's decoder, which checks the
  frame's CRC-16 (``err_detect=crccheck+explode``). Output latency: one frame plus the next
  frame's header (<= 16 bytes); the last frame comes out at `close()`.
- ``ogg`` (Opus; Vorbis too): Ogg pages are self-delimiting (27-byte header + lacing table), so
  pages are parsed here -- capture pattern, CRC-32, page sequence numbers, packet lacing across
  pages -- and each complete packet goes to FFmpeg's ``opus`` (or ``vorbis``) decoder, its
  identification header (OpusHead) as extradata. The Opus pre-skip is trimmed from the start,
  and the end-of-stream page's granule position trims the last packet's padding, as FFmpeg's Ogg
  demuxer does; chained streams (a new BOS after an EOS) are followed. The comment header is
  skipped without being kept (it may carry cover art). Output latency: one page, so it depends on
  the encoder: one Opus frame (20 ms) with a page per packet, as streaming encoders flush; a full
  second with FFmpeg's default ``page_duration``.

Output: one `PcmChunk` per decoded frame, at the codec's own rate (Opus: always 48 kHz);
multi-channel audio is averaged to mono (equal weights, so it cannot clip), lossy codecs'
overshoot is clipped to [-1, 1].

Corruption policy: strict, no skipping. Whatever can be detected -- a wrong magic number, an Ogg
page with a bad CRC or a missing page, a FLAC frame with a bad CRC or out of sequence, a packet
FFmpeg's decoder rejects, or, for mp3/aac, no decodable frame within the first 64 KiB -- raises
`DecodeError` from `feed()` at once, and the decoder stays failed (later calls raise again).
Raw PCM and WAV data cannot be checked: any bytes are valid samples. Audio already
returned stays valid. A truncated end -- a partial sample, header, page, packet or frame, an Ogg
stream without its end-of-stream page, fewer WAV data bytes or FLAC samples than the header
declares -- raises `DecodeError` from `close()`. What FFmpeg's MP3/AAC parsers skip while
resynchronising (e.g. an ID3v1 tag at the end) is skipped silently. A stream of zero bytes is
empty audio, not an error.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Callable
from typing import Literal, Protocol, TypeVar, cast

import av
import numpy as np

from ..providers.base import PcmChunk
from .resampling import Resampler

__all__ = [
    "FORMAT_ALIASES",
    "PCM_DEFAULT_RATE",
    "DecodeError",
    "StreamingDecoder",
    "decoder_for_mime",
    "open_decoder",
    "parse_mime",
]

PCM_DEFAULT_RATE = 24000
"""OpenAI's ``pcm`` response format: 24 kHz s16le mono."""

MAX_SYNC_BYTES = 64 * 1024
"""mp3/aac: input without a single decodable frame after this many bytes is not that format."""

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


# --------------------------------------------------------------------------------------------------
# Format names and MIME types

FORMAT_ALIASES: dict[str, str] = {
    "pcm": "pcm",
    "l16": "pcm",
    "s16le": "pcm",
    "wav": "wav",
    "wave": "wav",
    "mp3": "mp3",
    "mpeg": "mp3",
    "aac": "aac",
    "adts": "aac",
    "flac": "flac",
    "ogg": "ogg",
    "ogg_opus": "ogg",
    "opus": "ogg",
    "ogg_vorbis": "ogg",
    "vorbis": "ogg",
}

_MIME_FORMATS: dict[str, str] = {
    "audio/l16": "pcm",
    "audio/pcm": "pcm",
    "audio/x-pcm": "pcm",
    "audio/wav": "wav",
    "audio/wave": "wav",
    "audio/x-wav": "wav",
    "audio/vnd.wave": "wav",
    "audio/x-pn-wav": "wav",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/mpeg3": "mp3",
    "audio/x-mpeg": "mp3",
    "audio/x-mp3": "mp3",
    "audio/mpga": "mp3",
    "audio/aac": "aac",
    "audio/aacp": "aac",
    "audio/x-aac": "aac",
    "audio/vnd.dlna.adts": "aac",
    "audio/flac": "flac",
    "audio/x-flac": "flac",
    "audio/ogg": "ogg",
    "audio/opus": "ogg",
    "application/ogg": "ogg",
    "audio/x-ogg": "ogg",
}


def parse_mime(mime: str) -> tuple[str, dict[str, str]]:
    """``"audio/L16; codec=pcm; rate=24000"`` -> ``("audio/l16", {"codec": "pcm", "rate": "24000"})``."""
    essence, *params = mime.split(";")
    parsed: dict[str, str] = {}
    for param in params:
        key, sep, value = param.partition("=")
        if sep:
            parsed[key.strip().lower()] = value.strip().strip('"').strip()
    return essence.strip().lower(), parsed


def open_decoder(fmt: str, *, sample_rate: int | None = None, channels: int = 1) -> StreamingDecoder:
    """A decoder for `fmt` (see FORMAT_ALIASES; case-insensitive).

    `sample_rate` and `channels` describe raw PCM only (default: PCM_DEFAULT_RATE, mono); every
    other format carries its own and ignores them.
    """
    name = FORMAT_ALIASES.get(fmt.strip().lower())
    if name is None:
        raise DecodeError(f"unknown audio format {fmt!r}; known: {', '.join(sorted(FORMAT_ALIASES))}")
    if name == "pcm":
        rate = PCM_DEFAULT_RATE if sample_rate is None else sample_rate
        if isinstance(rate, bool) or not isinstance(rate, int) or not 1000 <= rate <= 768000:
            raise DecodeError(f"bad PCM sample rate {sample_rate!r}")
        if isinstance(channels, bool) or not isinstance(channels, int) or not 1 <= channels <= 16:
            raise DecodeError(f"bad PCM channel count {channels!r}")
        return _PcmDecoder(rate, channels)
    return _FACTORIES[name]()


def decoder_for_mime(mime: str, *, sample_rate: int | None = None) -> StreamingDecoder:
    """A decoder for a Content-Type such as ``audio/L16;codec=pcm;rate=24000`` or ``audio/mpeg``.

    Raw PCM (``audio/L16``, ``audio/pcm``) takes its rate from the ``rate`` parameter (else
    `sample_rate`; one of them is required: guessing a rate would play audio at the wrong pitch)
    and its channel count from ``channels`` (default 1). Like Gemini, and unlike RFC 2586, L16 is
    taken to be little-endian. Unknown types raise DecodeError.
    """
    essence, params = parse_mime(mime)
    name = _MIME_FORMATS.get(essence)
    if name is None:
        raise DecodeError(f"unsupported audio type {mime!r}")
    if name == "ogg":
        codecs = params.get("codecs", "").lower()
        if codecs and not {c.strip() for c in codecs.split(",")} <= {"opus", "vorbis"}:
            raise DecodeError(f"unsupported Ogg codec in {mime!r}: only Opus and Vorbis")
    if name != "pcm":
        return open_decoder(name)
    raw_rate = params.get("rate") or params.get("samplerate") or params.get("sample_rate")
    try:
        rate = int(raw_rate) if raw_rate is not None else sample_rate
        channels = int(params.get("channels", "1"))
    except ValueError:
        raise DecodeError(f"bad PCM parameters in {mime!r}") from None
    if rate is None:
        raise DecodeError(f"{mime!r} does not say its sample rate (a 'rate' parameter)")
    return open_decoder("pcm", sample_rate=rate, channels=channels)


# --------------------------------------------------------------------------------------------------
# Shared machinery: state and errors, frame conversion, trimming


class _Decoder:
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


class _Window:
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


class _Codec:
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


def _chunks(decoded: list[tuple[np.ndarray, int]], window: _Window | None = None) -> list[PcmChunk]:
    out = []
    for samples, rate in decoded:
        if window is not None:
            samples = window.cut(samples)
        if len(samples):
            out.append(PcmChunk(np.ascontiguousarray(samples), rate))
    return out


def _id3v2_size(head: bytes) -> int | None:
    """Bytes of the ID3v2 tag that `head` (>= 10 bytes) starts with; 0 if none; None if malformed."""
    if head[:3] != b"ID3":
        return 0
    size_bytes = head[6:10]
    if any(b & 0x80 for b in size_bytes):
        return None
    size = 0
    for b in size_bytes:
        size = size << 7 | b
    return 10 + size + (10 if head[5] & 0x10 else 0)


class _Id3Skipper:
    """Drops ID3v2 tags at the start of an elementary stream (FFmpeg's parsers would not)."""

    def __init__(self) -> None:
        self._head = b""
        self._skip = 0
        self.done = False

    def feed(self, data: bytes) -> bytes:
        """`data` minus any leading tag; b"" while in a tag or undecided."""
        while data and not self.done:
            if self._skip:
                n = min(self._skip, len(data))
                self._skip -= n
                data = data[n:]
                continue
            head, self._head = self._head + data, b""
            if len(head) < 10 and head[:3] == b"ID3"[: len(head)]:
                self._head = head  # maybe a tag: wait for its 10-byte header
                return b""
            size = _id3v2_size(head) if len(head) >= 10 else 0
            if size is None:
                raise DecodeError("malformed ID3v2 tag")
            if not size:
                self.done = True
            self._skip = size
            data = head
        return data

    @property
    def pending(self) -> bool:
        """The input ended inside a tag (or a tag's first bytes)."""
        return bool(self._head or self._skip)


# --------------------------------------------------------------------------------------------------
# Raw PCM and WAV


def _pcm_codec(codec_name: str, sample_rate: int, layout: av.AudioLayout | str) -> _Codec:
    context = cast(av.AudioCodecContext, av.CodecContext.create(codec_name, "r"))
    context.sample_rate = sample_rate
    context.layout = layout
    return _Codec(context)


def _layout_for(channels: int) -> str:
    return {1: "mono", 2: "stereo"}.get(channels, f"{channels} channels")


class _PcmSink:
    """Whole sample frames of a PCM codec go to FFmpeg; a partial one waits for its other bytes."""

    def __init__(self, codec: _Codec, block_align: int) -> None:
        self._codec = codec
        self._block_align = block_align
        self._partial = b""

    def feed(self, data: bytes) -> list[PcmChunk]:
        data = self._partial + data if self._partial else data
        whole = len(data) - len(data) % self._block_align
        self._partial = data[whole:]
        return _chunks(self._codec.decode(data[:whole])) if whole else []

    def close(self, what: str) -> list[PcmChunk]:
        if self._partial:
            raise DecodeError(f"{what}: truncated, ends inside a sample ({len(self._partial)} stray bytes)")
        return _chunks(self._codec.decode(None))


class _PcmDecoder(_Decoder):
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


class _WavDecoder(_Decoder):
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


# --------------------------------------------------------------------------------------------------
# MP3 and AAC (ADTS): FFmpeg's parsers


def _mp3_vbr_header(frame: bytes) -> tuple[bool, int, int | None]:
    """(is a Xing/Info/VBRI header frame, start trim, end position or None) of an MP3 frame.

    The trims are those of FFmpeg's MP3 demuxer: with a LAME tag, the encoder delay plus the
    decoder's 529 samples are dropped from the start, and with a frame count the padding from the
    end; positions count decoded samples, the header frame not included.
    """
    if len(frame) < 4 or frame[0] != 0xFF or frame[1] & 0xE0 != 0xE0:
        return False, 0, None
    version = frame[1] >> 3 & 3  # 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5
    layer = frame[1] >> 1 & 3  # 1: layer III
    mono = frame[3] >> 6 == 3
    if version == 3:
        side_info = 17 if mono else 32
    else:
        side_info = 9 if mono else 17
    samples_per_frame = 1152 if version == 3 else 576
    if frame[36:40] == b"VBRI":
        return True, 0, None
    at = 4 + side_info
    tag = frame[at : at + 4]
    if layer != 1 or tag not in (b"Xing", b"Info"):
        return False, 0, None
    (flags,) = struct.unpack_from(">I", frame.ljust(at + 8, b"\0"), at + 4)
    at += 8
    frames = None
    if flags & 1:
        (frames,) = struct.unpack_from(">I", frame.ljust(at + 4, b"\0"), at)
        at += 4
    at += (4 if flags & 2 else 0) + (100 if flags & 4 else 0) + (4 if flags & 8 else 0)
    if frame[at : at + 4] not in (b"LAME", b"Lavf", b"Lavc") or len(frame) < at + 24:
        return True, 0, None
    delays = int.from_bytes(frame[at + 21 : at + 24], "big")
    start_pad, end_pad = delays >> 12, delays & 0xFFF
    decoder_delay = 528 + 1
    end = frames * samples_per_frame - end_pad + decoder_delay if frames else None
    return True, start_pad + decoder_delay, end


class _ParsedDecoder(_Decoder):
    """An elementary stream cut into frames by FFmpeg's parser for the codec."""

    def __init__(self, fmt: str, codec_names: tuple[str, ...]) -> None:
        super().__init__()
        self.format = fmt
        for name in codec_names:
            try:
                context = av.CodecContext.create(name, "r")
                break
            except (av.FFmpegError, ValueError):
                continue
        else:
            raise DecodeError(f"this FFmpeg build has no {fmt} decoder")
        self._codec = _Codec(cast(av.AudioCodecContext, context))
        self._id3 = _Id3Skipper()
        self._window = _Window()
        self._packets = 0
        self._decoded = 0
        self._parsed_bytes = 0

    def _feed(self, data: bytes) -> list[PcmChunk]:
        data = self._id3.feed(data)
        if not data:
            return []
        self._parsed_bytes += len(data)
        out = self._decode_packets(self._codec.context.parse(data))
        if not self._decoded and self._parsed_bytes > MAX_SYNC_BYTES:
            raise DecodeError(f"not an {self.format} stream: no audio frame in {MAX_SYNC_BYTES} bytes")
        return out

    def _decode_packets(self, packets: list[av.Packet]) -> list[PcmChunk]:
        out: list[PcmChunk] = []
        for packet in packets:
            self._packets += 1
            if self._packets == 1 and self.format == "mp3":
                is_header, start, end = _mp3_vbr_header(bytes(packet))
                if is_header:
                    self._window = _Window(start, end)
                    continue
            decoded = self._codec.decode(packet)
            self._decoded += sum(len(samples) for samples, _ in decoded)
            out += _chunks(decoded, self._window)
        return out

    def _close(self) -> list[PcmChunk]:
        if self._id3.pending:
            raise DecodeError(f"{self.format} stream truncated: it ends inside an ID3 tag")
        # These parsers emit every frame as soon as it is complete: what a flush still returns is
        # a frame cut short.
        leftover = self._codec.context.parse(None)
        if leftover:
            raise DecodeError(f"{self.format} stream truncated: its last frame is incomplete")
        out = _chunks(self._codec.decode(None), self._window)
        if not self._decoded and not out:
            raise DecodeError(f"not an {self.format} stream: no audio frame in {self._fed} bytes")
        return out


# --------------------------------------------------------------------------------------------------
# FLAC: header walk and frame delimiting here, decoding by FFmpeg


def _crc8_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc << 1 ^ 0x07 if crc & 0x80 else crc << 1) & 0xFF
        table.append(crc)
    return table


_CRC8 = _crc8_table()
_FLAC_SYNC = re.compile(b"\xff[\xf8\xf9]")
_FLAC_RATES = (0, 88200, 176400, 192000, 8000, 16000, 22050, 24000, 32000, 44100, 48000, 96000)
_FLAC_BPS = (0, 8, 12, None, 16, 20, 24, 32)


def _flac_block_size(code: int) -> int:
    if code == 1:
        return 192
    if 2 <= code <= 5:
        return 576 << (code - 2)
    return 256 << (code - 8)  # 8..15; 6 and 7 are read from the header's end


class _FlacHeader:
    __slots__ = ("block_size", "key", "length", "number", "variable")

    def __init__(self, variable: bool, number: int, block_size: int, key: tuple[int, ...], length: int) -> None:
        self.variable = variable
        self.number = number
        self.block_size = block_size
        self.key = key
        self.length = length


_MORE: Literal["more"] = "more"


def _flac_header(buf: bytearray, at: int) -> _FlacHeader | Literal["more"] | None:
    """The frame header at `at`: None if there is none, _MORE if more bytes are needed to tell."""
    avail = len(buf) - at
    if avail < 4:
        return _MORE
    if buf[at] != 0xFF or buf[at + 1] & 0xFE != 0xF8:
        return None
    b2, b3 = buf[at + 2], buf[at + 3]
    size_code, rate_code = b2 >> 4, b2 & 15
    assignment, bps_code = b3 >> 4, b3 >> 1 & 7
    if size_code == 0 or rate_code == 15 or assignment > 10 or _FLAC_BPS[bps_code] is None or b3 & 1:
        return None
    pos = at + 4
    if avail < 5:
        return _MORE
    first = buf[pos]
    if first < 0x80:
        extra, number = 0, first
    elif first < 0xC0 or first == 0xFF:
        return None
    elif first == 0xFE:
        extra, number = 6, 0
    else:  # UTF-8-like: 110xxxxx 10xxxxxx, 1110xxxx 10xxxxxx 10xxxxxx, ...
        extra = next(n for n, limit in enumerate((0xE0, 0xF0, 0xF8, 0xFC, 0xFE), 1) if first < limit)
        number = first & (0x3F >> extra)
    variable = bool(buf[at + 1] & 1)
    if extra > (6 if variable else 5):
        return None
    need = 5 + extra + (1 if size_code == 6 else 2 if size_code == 7 else 0)
    need += 1 if rate_code == 12 else 2 if rate_code in (13, 14) else 0
    need += 1  # CRC-8
    if avail < need:
        return _MORE
    for i in range(1, extra + 1):
        byte = buf[pos + i]
        if byte & 0xC0 != 0x80:
            return None
        number = number << 6 | byte & 0x3F
    pos += 1 + extra
    if size_code == 6:
        block_size = buf[pos] + 1
        pos += 1
    elif size_code == 7:
        block_size = (buf[pos] << 8 | buf[pos + 1]) + 1
        pos += 2
    else:
        block_size = _flac_block_size(size_code)
    if rate_code == 12:
        rate = buf[pos] * 1000
        pos += 1
    elif rate_code in (13, 14):
        rate = (buf[pos] << 8 | buf[pos + 1]) * (10 if rate_code == 14 else 1)
        pos += 2
    else:
        rate = _FLAC_RATES[rate_code]
    crc = 0
    for i in range(at, pos):
        crc = _CRC8[crc ^ buf[i]]
    if crc != buf[pos]:
        return None
    channels = assignment + 1 if assignment < 8 else 2
    return _FlacHeader(variable, number, block_size, (int(variable), rate, channels, bps_code), pos + 1 - at)


class _FlacDecoder(_Decoder):
    format = "flac"

    def __init__(self) -> None:
        super().__init__()
        self._id3 = _Id3Skipper()
        self._buf = bytearray()
        self._state = "magic"  # magic -> metadata (block header | block body | skip) -> frames
        self._last_block = False
        self._block_left = 0
        self._metadata_bytes = 0
        self._streaminfo: bytes | None = None
        self._codec: _Codec | None = None
        self._frame: _FlacHeader | None = None  # header of the frame at the start of _buf
        self._scan = 0
        self._decoded = 0
        self.total_samples = 0  # from STREAMINFO; 0: unknown

    def _feed(self, data: bytes) -> list[PcmChunk]:
        data = self._id3.feed(data)
        if not data:
            return []
        self._buf += data
        if self._state != "frames" and not self._metadata():
            return []
        return self._frames(final=False)

    def _metadata(self) -> bool:
        """Walks the fLaC marker and metadata blocks; True once the frames start."""
        while self._state != "frames":
            if self._state == "magic":
                if len(self._buf) < 4:
                    if bytes(self._buf) != b"fLaC"[: len(self._buf)] and self._buf[:1] != b"\xff":
                        raise DecodeError("not a FLAC stream (no fLaC marker)")
                    return False
                if self._buf[:4] == b"fLaC":
                    del self._buf[:4]
                    self._state = "block"
                else:  # bare frames, no metadata?
                    header = _flac_header(self._buf, 0)
                    if header is _MORE:
                        return False
                    if header is None:
                        raise DecodeError("not a FLAC stream (no fLaC marker)")
                    self._state = "frames"
            elif self._state == "block":
                if len(self._buf) < 4:
                    return False
                kind, size = self._buf[0], int.from_bytes(self._buf[1:4], "big")
                self._last_block = bool(kind & 0x80)
                del self._buf[:4]
                self._metadata_bytes += 4 + size
                if self._metadata_bytes > MAX_HEADER_BYTES:
                    raise DecodeError(f"FLAC metadata larger than {MAX_HEADER_BYTES} bytes")
                if kind & 0x7F == 0:
                    if size != 34:
                        raise DecodeError(f"FLAC STREAMINFO of {size} bytes")
                    self._state = "streaminfo"
                else:
                    if kind & 0x7F == 127:
                        raise DecodeError("corrupt FLAC metadata block")
                    self._block_left = size
                    self._state = "skip"
            elif self._state == "streaminfo":
                if len(self._buf) < 34:
                    return False
                self._streaminfo = bytes(self._buf[:34])
                del self._buf[:34]
                self.total_samples = int.from_bytes(self._streaminfo[13:18], "big") & 0xFFFFFFFFF
                self._state = "frames" if self._last_block else "block"
            else:  # skip
                n = min(self._block_left, len(self._buf))
                del self._buf[:n]
                self._block_left -= n
                if self._block_left:
                    return False
                self._state = "frames" if self._last_block else "block"
        context = av.CodecContext.create("flac", "r")
        if self._streaminfo is not None:
            context.extradata = self._streaminfo
        context.options = {"err_detect": "crccheck+explode"}
        self._codec = _Codec(context)
        return True

    def _frames(self, final: bool) -> list[PcmChunk]:
        out: list[PcmChunk] = []
        buf = self._buf
        while buf:
            if self._frame is None:
                header = _flac_header(buf, 0)
                if header is _MORE:
                    break
                if not isinstance(header, _FlacHeader):
                    raise DecodeError("corrupt FLAC stream: no frame header where a frame starts")
                self._frame = header
                self._scan = header.length + 2
            end = self._next_frame(buf)
            if end is None:
                if len(buf) > MAX_PACKET_BYTES:
                    raise DecodeError(f"corrupt FLAC stream: no frame boundary in {MAX_PACKET_BYTES} bytes")
                if not final:
                    break
                end = len(buf)
            out += self._decode(bytes(buf[:end]))
            del buf[:end]
            self._frame = None
        return out

    def _next_frame(self, buf: bytearray) -> int | None:
        """Where the frame at the start of `buf` ends: where the header of the one after it starts."""
        current = self._frame
        assert current is not None
        expected = current.number + (current.block_size if current.variable else 1)
        while (match := _FLAC_SYNC.search(buf, self._scan)) is not None:
            at = match.start()
            header = _flac_header(buf, at)
            if header is _MORE:
                self._scan = at  # look again when the rest of this header is here
                return None
            if isinstance(header, _FlacHeader) and header.key == current.key:
                if header.number != expected:
                    # A valid header out of sequence: the header of the frame(s) between is lost.
                    raise DecodeError(f"corrupt FLAC stream: frame {header.number} follows {current.number}")
                return at
            self._scan = at + 1
        self._scan = max(self._scan, len(buf) - 1)
        return None

    def _decode(self, frame: bytes) -> list[PcmChunk]:
        assert self._codec is not None
        decoded = self._codec.decode(frame)
        self._decoded += sum(len(samples) for samples, _ in decoded)
        return _chunks(decoded)

    def _close(self) -> list[PcmChunk]:
        if self._id3.pending or self._state != "frames":
            raise DecodeError("FLAC stream truncated: it ends inside its header")
        try:
            out = self._frames(final=True)
        except av.FFmpegError as exc:
            raise DecodeError(f"FLAC stream truncated or corrupt: its last frame does not decode ({exc})") from exc
        assert self._codec is not None
        out += _chunks(self._codec.decode(None))
        if self.total_samples and self._decoded != self.total_samples:
            raise DecodeError(f"FLAC stream truncated: {self._decoded} of {self.total_samples} samples")
        if not self._decoded and self._fed:
            raise DecodeError("FLAC stream without audio frames")
        return out


# --------------------------------------------------------------------------------------------------
# Ogg: pages and packets here, decoding by FFmpeg

_BIT_REVERSED = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))
_OGG_HEADER = struct.Struct("<4sBBqIIIB")  # capture, version, flags, granule, serial, sequence, crc, segments
_OGG_CONTINUED, _OGG_BOS, _OGG_EOS = 1, 2, 4


def _ogg_crc(page: bytes) -> int:
    """Ogg's CRC-32 (polynomial 0x04C11DB7, MSB first, no pre- or post-inversion) via zlib's
    reflected CRC-32 of the bit-reversed bytes."""
    reflected = zlib.crc32(page.translate(_BIT_REVERSED), 0xFFFFFFFF) ^ 0xFFFFFFFF
    return int(f"{reflected:032b}"[::-1], 2)


def _xiph_lacing(packets: list[bytes]) -> bytes:
    out = bytearray([len(packets) - 1])
    for packet in packets[:-1]:
        out += b"\xff" * (len(packet) // 255) + bytes([len(packet) % 255])
    return bytes(out) + b"".join(packets)


# A Vorbis comment header with no comments: the real one is skipped unread (it may hold pictures).
_EMPTY_VORBIS_COMMENTS = b"\x03vorbis" + struct.pack("<II", 0, 0) + b"\x01"


class _OggStream:
    """One logical stream (Opus or Vorbis) of the Ogg physical stream: headers, decoder, trims."""

    def __init__(self, serial: int, ident: bytes) -> None:
        self.serial = serial
        self.sequence: int | None = None
        self.ended = False
        self.packets = 0  # complete packets so far, headers included
        self.partial: bytearray | None = None  # a packet that goes on in the next page
        self.codec: _Codec | None = None
        self.decoded = 0
        self.granule_offset: int | None = None
        self.window = _Window()
        self.pre_skip = 0
        if ident.startswith(b"OpusHead"):
            if len(ident) < 19 or ident[8] >> 4:
                raise DecodeError("bad OpusHead packet")
            self.codec_name = "opus"
            self.header_packets = 2
            # FFmpeg's Opus decoders drop the pre-skip themselves (it is in their extradata).
            (self.pre_skip,) = struct.unpack_from("<H", ident, 10)
        else:
            self.codec_name = "vorbis"
            self.header_packets = 3
        self._headers = [ident]

    def header(self, index: int, packet: bytes) -> None:
        if index == 1:
            if self.codec_name == "opus" and not packet.startswith(b"OpusTags"):
                raise DecodeError("Ogg Opus stream without its OpusTags header")
            self._headers.append(_EMPTY_VORBIS_COMMENTS)
        elif index == 2:
            if not packet.startswith(b"\x05vorbis"):
                raise DecodeError("Ogg Vorbis stream without its setup header")
            self._headers.append(packet)
        if len(self._headers) == self.header_packets:
            context = av.CodecContext.create(self.codec_name, "r")
            if self.codec_name == "opus":
                context.extradata = self._headers[0]
            else:
                context.extradata = _xiph_lacing(self._headers)
            self.codec = _Codec(cast(av.AudioCodecContext, context))

    def decode(self, packet: bytes) -> list[tuple[np.ndarray, int]]:
        assert self.codec is not None
        decoded = self.codec.decode(packet)
        self.decoded += sum(len(samples) for samples, _ in decoded)
        return decoded

    def end_page(self, granule: int, eos: bool, had_audio: bool) -> None:
        """Granule position bookkeeping after a page's packets are decoded (before they are cut).

        A granule position counts the samples at the end of the page's last packet, Opus's
        pre-skip included; at the end-of-stream page it says where the audio ends.
        """
        if granule < 0 or not had_audio:
            return
        position = granule - self.pre_skip
        if self.granule_offset is None:
            # An Opus stream may start at a granule position > 0 (RFC 7845, section 4.5).
            start = position - self.decoded if self.codec_name == "opus" and not eos else 0
            self.granule_offset = max(0, start)
        if eos:
            self.window.end = position - self.granule_offset


class _OggDecoder(_Decoder):
    format = "ogg"

    def __init__(self) -> None:
        super().__init__()
        self._buf = bytearray()
        self._stream: _OggStream | None = None
        self._other_serials: set[int] = set()
        self._pages = 0

    def _feed(self, data: bytes) -> list[PcmChunk]:
        self._buf += data
        out: list[PcmChunk] = []
        buf = self._buf
        while len(buf) >= 27:
            capture, version, flags, granule, serial, sequence, crc, segments = _OGG_HEADER.unpack_from(buf)
            if capture != b"OggS" or version != 0:
                if not self._pages:
                    raise DecodeError("not an Ogg stream")
                raise DecodeError("corrupt Ogg stream (no page where one should start)")
            if len(buf) < 27 + segments:
                break
            lacing = bytes(buf[27 : 27 + segments])
            size = 27 + segments + sum(lacing)
            if len(buf) < size:
                break
            page = bytes(buf[:size])
            del buf[:size]
            if _ogg_crc(page[:22] + b"\0\0\0\0" + page[26:]) != crc:
                raise DecodeError(f"corrupt Ogg stream (CRC mismatch in page {self._pages})")
            self._pages += 1
            out += self._page(flags, granule, serial, sequence, lacing, page[27 + segments :])
        if not self._pages and buf[:4] != b"OggS"[: len(buf[:4])]:
            raise DecodeError("not an Ogg stream")
        return out

    def _page(self, flags: int, granule: int, serial: int, sequence: int, lacing: bytes, body: bytes) -> list[PcmChunk]:
        stream = self._stream
        if flags & _OGG_BOS:
            ident = body[: lacing[0]] if lacing else b""
            if ident.startswith((b"OpusHead", b"\x01vorbis")) and (stream is None or stream.ended):
                self._stream = _OggStream(serial, ident)
                self._other_serials.clear()
                return self._packets(self._stream, flags, granule, sequence, lacing, body)
            self._other_serials.add(serial)  # e.g. a Skeleton stream, or a second audio stream
            return []
        if stream is not None and serial == stream.serial:
            return self._packets(stream, flags, granule, sequence, lacing, body)
        if stream is None:
            # Every BOS page comes first; none of them started a stream this decoder can play.
            raise DecodeError("unsupported Ogg stream: no Opus or Vorbis stream in it")
        if serial not in self._other_serials:
            raise DecodeError("corrupt Ogg stream (a page of no known stream)")
        return []

    def _packets(
        self, stream: _OggStream, flags: int, granule: int, sequence: int, lacing: bytes, body: bytes
    ) -> list[PcmChunk]:
        if stream.ended:
            raise DecodeError("corrupt Ogg stream (page after the end of its stream)")
        if stream.sequence is not None and sequence != stream.sequence + 1:
            raise DecodeError(f"corrupt Ogg stream (page {stream.sequence + 1} missing)")
        stream.sequence = sequence
        if bool(flags & _OGG_CONTINUED) != (stream.partial is not None):
            raise DecodeError("corrupt Ogg stream (packet continuation mismatch)")
        decoded: list[tuple[np.ndarray, int]] = []
        had_audio = False
        pos = 0
        for value in lacing:
            piece = body[pos : pos + value]
            pos += value
            if stream.partial is None:
                stream.partial = bytearray()
            if stream.packets == 1:
                # The comment header: only its signature is kept (it may carry pictures).
                stream.partial += piece[: max(0, 8 - len(stream.partial))]
            else:
                stream.partial += piece
                if len(stream.partial) > MAX_PACKET_BYTES:
                    raise DecodeError(f"corrupt Ogg stream (packet over {MAX_PACKET_BYTES} bytes)")
            if value == 255:
                continue  # the packet goes on
            packet, stream.partial = bytes(stream.partial), None
            index = stream.packets
            stream.packets += 1
            if index == 0:
                continue  # the identification header, read from the BOS page
            if index < stream.header_packets:
                stream.header(index, packet)
            else:
                decoded += stream.decode(packet)
                had_audio = True
        eos = bool(flags & _OGG_EOS)
        stream.end_page(granule, eos, had_audio)
        out = _chunks(decoded, stream.window)
        if eos:
            if stream.partial is not None:
                raise DecodeError("corrupt Ogg stream (a packet continues past the end of its stream)")
            if stream.codec is not None:
                out += _chunks(stream.codec.decode(None), stream.window)
            stream.ended = True
        return out

    def _close(self) -> list[PcmChunk]:
        if self._buf:
            raise DecodeError(f"Ogg stream truncated: it ends inside a page ({len(self._buf)} bytes)")
        stream = self._stream
        if stream is None:
            raise DecodeError("Ogg stream without an Opus or Vorbis stream")
        if not stream.ended:
            raise DecodeError("Ogg stream truncated: no end-of-stream page")
        return []


_FACTORIES: dict[str, Callable[[], StreamingDecoder]] = {
    "wav": _WavDecoder,
    "mp3": lambda: _ParsedDecoder("mp3", ("mp3float", "mp3")),
    "aac": lambda: _ParsedDecoder("aac", ("aac",)),
    "flac": _FlacDecoder,
    "ogg": _OggDecoder,
}
