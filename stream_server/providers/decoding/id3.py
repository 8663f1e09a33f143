"""ID3v2 tags in front of an elementary stream (MP3, AAC, FLAC): skipped, never kept."""

from __future__ import annotations

from .base import DecodeError


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


class Id3Skipper:
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
