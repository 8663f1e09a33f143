"""Boundaries set by the layout of the text rather than its punctuation: blank lines, list items
and headings, bullets and enumerators.

A segment may start with a marker (a bullet "• ", "- ", "# " and/or an enumerator "1.", "2)",
"3.)", "a."): it is then a list item or heading, which its line break ends, and whose next
enumerator ("1. one 2. two") starts a new segment. The functions here judge those events from
the buffer; see `verdicts` for what they return.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .nesting import Nesting
from .verdicts import CONTINUE, MAX_GAP, WAIT, Decision, break_at

__all__ = [
    "NO_MARKER",
    "Marker",
    "decide_bullet",
    "decide_newline",
    "decide_next_item",
    "parse_marker",
]

# What a segment may start with, followed by whitespace. `_MARKER_PREFIX_RE` matches every text
# that could still grow into one: while the buffered start of the segment matches it, the
# marker is undecided.
_MARKER_RE = re.compile(
    r"(?P<bullet>[•‣◦⁃▪●][ \t]{0,4}|[-*+][ \t]{1,4}|#)?"
    r"(?:(?P<enum>\d{1,2}|[a-z])(?:\.\)|[.)])(?=\s))?"
)
_MARKER_PREFIX_RE = re.compile(
    r"(?:[•‣◦⁃▪●][ \t]{0,4}|[-*+][ \t]{0,4}|#)?(?:(?:\d{1,2}|[a-z])(?:\.\)?|\))?)?"
)
_MARKER_WINDOW = 10
_ITEM_TAIL_RE = re.compile(r"(?:\.\)|[.)])\s")
# A line that starts a list item or heading ends the line before it.
_LINE_ITEM_RE = re.compile(r"[•‣◦⁃▪●#]|[-*+][ \t]|\d{1,2}(?:\.\)|[.)])\s")
_LINE_ITEM_PREFIX_RE = re.compile(r"[-*+]?|\d{1,2}(?:\.\)?|\))?")
_LINE_ITEM_WINDOW = 5


@dataclass(frozen=True, slots=True)
class Marker:
    """How the segment starts: "• ", "- ", "# ", "1. ", "b) " or nothing."""

    length: int  # characters of the marker (bullet and enumerator, not the space after)
    next_item: str | None  # the enumerator the next list item would have ("2", "c")
    line_item: bool  # a list item or heading: a single newline ends it


NO_MARKER = Marker(0, None, False)


def parse_marker(buf: str, start: int, end_of_text: bool) -> Marker | None:
    """The marker at the segment start, or None while the buffered text cannot tell yet."""
    head = buf[start : start + _MARKER_WINDOW]
    if not end_of_text and len(head) < _MARKER_WINDOW and _MARKER_PREFIX_RE.fullmatch(head):
        return None
    match = _MARKER_RE.match(buf, start)
    if match is None or match.end() == start:
        return NO_MARKER
    enum = match.group("enum")
    return Marker(match.end() - start, _successor(enum), True)


def _successor(enum: str | None) -> str | None:
    if enum is None:
        return None
    if enum.isdigit():
        return str(int(enum) + 1)
    return chr(ord(enum) + 1) if enum != "z" else None


def decide_newline(
    buf: str, start: int, index: int, marker: Marker, nesting: Nesting, end_of_text: bool
) -> Decision:
    """A blank line ends the segment; so does the end of a list item's or heading's line,
    and a line break before a list item. A single newline inside prose does not."""
    back, low = index - 1, max(start, index - MAX_GAP)
    while back >= low and buf[back].isspace():
        if buf[back] == "\n":
            return break_at(index + 1)
        back -= 1
    if nesting.protects(index):
        return CONTINUE
    if marker.line_item:
        return break_at(index + 1)
    return _decide_line_start(buf, index + 1, end_of_text)


def _decide_line_start(buf: str, begin: int, end_of_text: bool) -> Decision:
    """Does the line starting at `begin` start a list item or a heading?"""
    size = len(buf)
    index = begin
    while index < size and buf[index] != "\n" and buf[index].isspace():
        index += 1
        if index - begin > MAX_GAP:
            return CONTINUE
    head = buf[index : index + _LINE_ITEM_WINDOW]
    if _LINE_ITEM_RE.match(head):
        return break_at(begin)
    if end_of_text or len(head) == _LINE_ITEM_WINDOW:
        return CONTINUE
    # Too little text to tell: wait only while it could still become an item ("-", "12.").
    return WAIT if _LINE_ITEM_PREFIX_RE.fullmatch(head) else CONTINUE


def decide_bullet(buf: str, start: int, index: int, nesting: Nesting) -> Decision:
    """"• one • two": a bullet after whitespace starts a new segment."""
    after_space = index > start and buf[index - 1].isspace()
    return break_at(index) if after_space and not nesting.protects(index) else CONTINUE


def decide_next_item(buf: str, index: int, item: str, nesting: Nesting, end_of_text: bool) -> Decision:
    """"1. one 2. two": the next enumerator of a list item starts a new segment."""
    after = index + len(item)
    if buf[index:after] != item:
        if not end_of_text and item.startswith(buf[index:after]):
            return WAIT  # "1" may still become "10"
        return CONTINUE
    tail = buf[after : after + 3]
    if _ITEM_TAIL_RE.match(tail):
        return CONTINUE if nesting.protects(index) else break_at(index)
    if not end_of_text and tail in ("", ".", ")", ".)"):
        return WAIT
    return CONTINUE
