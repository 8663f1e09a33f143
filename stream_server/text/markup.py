"""Recognising SSML-style tags in streamed text: `<break time="1s"/>`, `<say-as ...>`, `</say-as>`.

A tag is never split, and the segmenter does not look for sentence ends inside it. The element
an opening tag starts is protected up to its closing tag (see `nesting`), except for elements
that wrap whole passages (`<speak>`, `<p>`, `<s>`, `<voice>`, `<lang>`): sentences inside them are
cut as usual. Empty elements (`<break>`, `<mark>`) protect nothing even without `/>`.

The scanner follows a small grammar, `<` `/`? name (attribute `=` quoted-value)* `/`? `>`, so
that "a < b" or "x<y then stop." is rejected after a character or two instead of waiting for a
`>` that never comes. It is resumable: text that arrives one character at a time is scanned once.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Literal

__all__ = ["MAX_TAG_CHARS", "Tag", "TagScanner", "protects_content"]

MAX_TAG_CHARS = 200  # a longer "<..." is not a tag

_BLOCK_ELEMENTS = frozenset({"speak", "p", "s", "paragraph", "sentence", "voice", "lang", "par", "seq"})
_EMPTY_ELEMENTS = frozenset({"break", "mark", "meta", "lexicon", "metadata"})


@dataclass(frozen=True, slots=True)
class Tag:
    end: int  # buffer index just past ">"
    name: str  # lower-case
    closing: bool  # "</name>"
    self_closing: bool  # "<name/>"


def protects_content(tag: Tag) -> bool:
    """Does this opening tag start an element whose text must stay in one segment?"""
    return not (tag.closing or tag.self_closing) and tag.name not in (
        _BLOCK_ELEMENTS | _EMPTY_ELEMENTS
    )


class _State(IntEnum):
    START = 0  # just after "<"
    NAME_START = 1  # after "</"
    NAME = 2
    IN_TAG = 3  # after the name or an attribute value
    ATTR = 4
    AFTER_ATTR = 5
    BEFORE_VALUE = 6
    VALUE = 7
    SLASH = 8


def _is_name_char(char: str) -> bool:
    return char.isalnum() or char in "-_:."


class TagScanner:
    """Scans the tag that starts at a `<`; remembers its progress between calls."""

    __slots__ = ("_closing", "_index", "_name_end", "_quote", "_start", "_state")

    def __init__(self) -> None:
        self._start = -1

    def shift(self, delta: int) -> None:
        """The buffer lost `delta` characters at its front."""
        if self._start >= 0:
            self._start -= delta
            self._index -= delta
            self._name_end -= delta

    def scan(self, buf: str, lt: int, size: int) -> Tag | None | bool:
        """The tag starting at `buf[lt] == "<"`: a `Tag`, None if it is not one, or True if
        `buf[:size]` ends before that is known."""
        if self._start != lt:
            self._start, self._index, self._state = lt, lt + 1, _State.START
            self._closing, self._quote, self._name_end = False, "", -1
        limit = min(size, lt + MAX_TAG_CHARS)
        index, state = self._index, self._state
        while index < limit:
            char = buf[index]
            next_state = self._step(state, char, index)
            if next_state is None:
                return None
            if next_state is True:
                name = buf[lt + 1 + self._closing : self._name_end].lower()
                self_closing = state is _State.SLASH
                return Tag(index + 1, name, self._closing, self_closing)
            state = next_state
            index += 1
        self._index, self._state = index, state
        return None if index >= lt + MAX_TAG_CHARS else True

    def _step(self, state: _State, char: str, index: int) -> _State | Literal[True] | None:
        """The state after `char`; True when the tag is complete, None when it is not a tag."""
        if state is _State.START:
            if char == "/":
                self._closing = True
                return _State.NAME_START
            return _State.NAME if char.isalpha() else None
        if state is _State.NAME_START:
            return _State.NAME if char.isalpha() else None
        if state is _State.NAME:
            if _is_name_char(char):
                return _State.NAME
            self._name_end = index
            return self._after_name_or_value(char)
        if state is _State.IN_TAG:
            if char.isspace():
                return _State.IN_TAG
            if char.isalpha():
                return _State.ATTR
            return self._after_name_or_value(char)
        if state is _State.ATTR:
            if _is_name_char(char):
                return _State.ATTR
            if char == "=":
                return _State.BEFORE_VALUE
            return _State.AFTER_ATTR if char.isspace() else None
        if state is _State.AFTER_ATTR:
            if char == "=":
                return _State.BEFORE_VALUE
            return _State.AFTER_ATTR if char.isspace() else None
        if state is _State.BEFORE_VALUE:
            if char in "\"'":
                self._quote = char
                return _State.VALUE
            return _State.BEFORE_VALUE if char.isspace() else None
        if state is _State.VALUE:
            if char == self._quote:
                return _State.IN_TAG
            return None if char == "<" else _State.VALUE
        # _State.SLASH
        return True if char == ">" else None

    def _after_name_or_value(self, char: str) -> _State | Literal[True] | None:
        if char == ">":
            return True
        if char == "/" and not self._closing:
            return _State.SLASH
        return _State.IN_TAG if char.isspace() else None
