"""Ogg (Opus, Vorbis): pages and packets here, decoding by FFmpeg."""

from __future__ import annotations

import struct
import zlib
from typing import cast

import av
import numpy as np

from ...media import PcmChunk
from .base import MAX_PACKET_BYTES, DecodeError, IncrementalDecoder, MonoCodec, SampleWindow, pcm_chunks

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
        self.codec: MonoCodec | None = None
        self.decoded = 0
        self.granule_offset: int | None = None
        self.window = SampleWindow()
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
            self.codec = MonoCodec(cast(av.AudioCodecContext, context))

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


class OggDecoder(IncrementalDecoder):
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
        out = pcm_chunks(decoded, stream.window)
        if eos:
            if stream.partial is not None:
                raise DecodeError("corrupt Ogg stream (a packet continues past the end of its stream)")
            if stream.codec is not None:
                out += pcm_chunks(stream.codec.decode(None), stream.window)
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
