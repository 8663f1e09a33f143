"""The length bound of a segment (characters and UTF-8 bytes) and where to cut overlong text.

`LimitTracker` finds the first buffer index at which the current segment stops fitting, walking
the text incrementally so that text arriving a character at a time is measured once.

`choose_cut` picks where an overlong segment is cut, from its first `limit + 1` characters only
(so the choice does not depend on how the text was chunked):

1. clause punctuation (`;` `:` `—` `–` `,` followed by whitespace; CJK `；：，、` without) whose
   cut falls in the last two thirds of the window: the strongest kind, then the latest (the
   floor keeps a strong mark near the start from producing a two-word segment);
2. else the last whitespace, never inside a tag (`<...>`, `[...]`) and never between two digits
   ("10 000"); the start of a tag counts as whitespace;
3. else the last clause punctuation anywhere;
4. else a hard cut at the limit (one word or tag longer than the limit).
"""

from __future__ import annotations

import re

from .chars import CLAUSE_STRENGTH
from .markup import Tag, TagScanner

__all__ = ["LimitTracker", "choose_cut", "utf8_len"]

_CLAUSE_RE = re.compile(r"[;:—–,](?=\s)|[；：，、]")
_TAG_START_RE = re.compile(r"<[A-Za-z/]|\[")
_MAX_INLINE_TAG = 40  # "[short pause]": longer bracketed text is ordinary text


def utf8_len(text: str) -> int:
    """Bytes of `text` in UTF-8 (a lone surrogate counts 3, as a client would have sent it)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


class LimitTracker:
    """Where the segment starting at `start` stops fitting `max_chars` and `max_bytes`."""

    __slots__ = ("_bytes", "_end", "_max_bytes", "_max_chars", "_pos", "_start")

    def __init__(self, max_chars: int, max_bytes: int | None) -> None:
        self._max_chars = max_chars
        self._max_bytes = max_bytes
        self.restart(0)

    def restart(self, start: int) -> None:
        """A new segment starts at `start`."""
        self._start = self._pos = start
        self._bytes = 0
        self._end: int | None = start + self._max_chars if self._max_bytes is None else None

    def shift(self, delta: int) -> None:
        self._start -= delta
        self._pos -= delta
        if self._end is not None:
            self._end -= delta

    def snapshot(self) -> tuple[int, int, int | None]:
        return self._pos, self._bytes, self._end

    def restore(self, state: tuple[int, int, int | None]) -> None:
        self._pos, self._bytes, self._end = state

    def limit(self, buf: str) -> int | None:
        """The first index that does not fit (`buf[start:limit]` is the longest prefix that
        does), or None when all of `buf` fits so far."""
        if self._end is not None or self._max_bytes is None:
            return self._end
        cap = self._start + self._max_chars
        stop = min(len(buf), cap)
        if self._pos < stop:
            chunk = buf[self._pos : stop]
            size = utf8_len(chunk)
            if self._bytes + size <= self._max_bytes:
                self._bytes += size
                self._pos = stop
            else:
                self._end = self._pos + self._chars_that_fit(chunk)
                return self._end
        if self._pos >= cap:
            self._end = cap
        return self._end

    def _chars_that_fit(self, chunk: str) -> int:
        room = self._max_bytes - self._bytes if self._max_bytes is not None else 0
        for count, char in enumerate(chunk):
            room -= utf8_len(char)
            if room < 0:
                return count
        return len(chunk)  # pragma: no cover - the caller knows the chunk does not fit


def choose_cut(buf: str, start: int, limit: int) -> int:
    """Where to end an overlong segment `buf[start:...]`; `buf[limit]` exists and does not fit.

    Returns an index in `(start, limit]`: the segment is `buf[start:cut]`.
    """
    window_end = limit + 1  # the character at `limit` may be the whitespace after a clause mark
    blocked = _blocked_spans(buf, start, window_end)
    floor = start + (limit - start) / 3

    best: tuple[int, int] | None = None  # (strength, cut) above the floor
    last_clause = -1
    for match in _CLAUSE_RE.finditer(buf, start, window_end):
        cut = match.end()
        if cut > limit or cut <= start or _inside(blocked, cut):
            continue
        last_clause = cut
        if cut >= floor:
            candidate = (CLAUSE_STRENGTH[match.group()], cut)
            best = candidate if best is None or candidate > best else best
    if best is not None:
        return best[1]

    space = _last_space(buf, start, limit, blocked)
    if space > start:
        return space
    if last_clause > start:
        return last_clause
    return limit


def _blocked_spans(buf: str, start: int, stop: int) -> list[tuple[int, int]]:
    """Spans (first, last] of cut positions inside tags in `buf[start:stop]`.

    A tag that is still open at `stop` blocks up to `stop`: its end is beyond the window, and
    the cut must not depend on text after the window.
    """
    spans: list[tuple[int, int]] = []
    index = start
    while True:
        match = _TAG_START_RE.search(buf, index, stop)
        if match is None:
            return spans
        first = match.start()
        if buf[first] == "<":
            tag = TagScanner().scan(buf, first, stop)
            if tag is True:
                spans.append((first, stop))
                return spans
            if isinstance(tag, Tag):
                spans.append((first, tag.end - 1))
                index = tag.end
                continue
        else:
            close = buf.find("]", first + 1, stop)
            if close >= 0 and close - first <= _MAX_INLINE_TAG:
                spans.append((first, close))
                index = close + 1
                continue
            if close < 0 and stop - first <= _MAX_INLINE_TAG:
                spans.append((first, stop))
                return spans
        index = first + 1


def _inside(spans: list[tuple[int, int]], cut: int) -> bool:
    return any(first < cut <= last for first, last in spans)


def _last_space(buf: str, start: int, limit: int, blocked: list[tuple[int, int]]) -> int:
    """The last acceptable whitespace or tag start in (start, limit], or -1."""
    tag_starts = {first for first, _ in blocked}
    for index in range(limit, start, -1):
        char = buf[index]
        if char.isspace():
            if _inside(blocked, index):
                continue
            if buf[index - 1].isdigit() and index + 1 < len(buf) and buf[index + 1].isdigit():
                continue  # "10 000": a number with a space inside
            return index
        if index in tag_starts and not _inside(blocked, index):
            return index
    return -1
