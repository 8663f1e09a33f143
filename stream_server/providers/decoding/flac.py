"""FLAC: the header walk and frame delimiting here (FFmpeg's parser holds ~10 frames), decoding by
FFmpeg."""

from __future__ import annotations

import re
from typing import Literal

import av

from ...media import PcmChunk
from .base import MAX_HEADER_BYTES, MAX_PACKET_BYTES, DecodeError, IncrementalDecoder, MonoCodec, pcm_chunks
from .id3 import Id3Skipper


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


class FlacDecoder(IncrementalDecoder):
    format = "flac"

    def __init__(self) -> None:
        super().__init__()
        self._id3 = Id3Skipper()
        self._buf = bytearray()
        self._state = "magic"  # magic -> metadata (block header | block body | skip) -> frames
        self._last_block = False
        self._block_left = 0
        self._metadata_bytes = 0
        self._streaminfo: bytes | None = None
        self._codec: MonoCodec | None = None
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
        self._codec = MonoCodec(context)
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
        return pcm_chunks(decoded)

    def _close(self) -> list[PcmChunk]:
        if self._id3.pending or self._state != "frames":
            raise DecodeError("FLAC stream truncated: it ends inside its header")
        try:
            out = self._frames(final=True)
        except av.FFmpegError as exc:
            raise DecodeError(f"FLAC stream truncated or corrupt: its last frame does not decode ({exc})") from exc
        assert self._codec is not None
        out += pcm_chunks(self._codec.decode(None))
        if self.total_samples and self._decoded != self.total_samples:
            raise DecodeError(f"FLAC stream truncated: {self._decoded} of {self.total_samples} samples")
        if not self._decoded and self._fed:
            raise DecodeError("FLAC stream without audio frames")
        return out
