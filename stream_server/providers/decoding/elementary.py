"""MP3 and AAC (ADTS) elementary streams, cut into frames by FFmpeg's own parsers."""

from __future__ import annotations

import struct
from typing import cast

import av

from ...media import PcmChunk
from .base import DecodeError, IncrementalDecoder, MonoCodec, SampleWindow, pcm_chunks
from .id3 import Id3Skipper

MAX_SYNC_BYTES = 64 * 1024
"""mp3/aac: input without a single decodable frame after this many bytes is not that format."""


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


class ElementaryDecoder(IncrementalDecoder):
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
        self._codec = MonoCodec(cast(av.AudioCodecContext, context))
        self._id3 = Id3Skipper()
        self._window = SampleWindow()
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
                    self._window = SampleWindow(start, end)
                    continue
            decoded = self._codec.decode(packet)
            self._decoded += sum(len(samples) for samples, _ in decoded)
            out += pcm_chunks(decoded, self._window)
        return out

    def _close(self) -> list[PcmChunk]:
        if self._id3.pending:
            raise DecodeError(f"{self.format} stream truncated: it ends inside an ID3 tag")
        # These parsers emit every frame as soon as it is complete: what a flush still returns is
        # a frame cut short.
        leftover = self._codec.context.parse(None)
        if leftover:
            raise DecodeError(f"{self.format} stream truncated: its last frame is incomplete")
        out = pcm_chunks(self._codec.decode(None), self._window)
        if not self._decoded and not out:
            raise DecodeError(f"not an {self.format} stream: no audio frame in {self._fed} bytes")
        return out
