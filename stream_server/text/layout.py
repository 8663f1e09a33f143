"""Boundaries set by the layout of the text rather than its punctuation: blank lines, list items
and headings, bullets and enumerators, and lines of prose without a stop.

A segment may start with a marker (a bullet "• ", "- ", "# " and/or an enumerator "1.", "2)",
"3.)", "a."): it is then a list item or heading, which its line break ends, and whose next
enumerator ("1. one 2. two") starts a new segment. The functions here judge those events from
the buffer; see `verdicts` for what they return.

A single newline in prose ends a segment only after a line that looks finished (short like a
heading or an LLM's list line, no continuing punctuation or word at its end) and before a line
that starts like a sentence (a capital): hard-wrapped prose, whose lines are long and break
mid-sentence before lower-case words just as often, stays whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .chars import OPENERS, RUN_CHARS
from .nesting import Nesting
from .verdicts import CONTINUE, MAX_GAP, WAIT, Decision, Verdict, break_at

__all__ = [
    "NO_MARKER",
    "Marker",
    "decide_bullet",
    "decide_newline",
    "decide_next_item",
    "parse_marker",
    "prose_lines_end",
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

# A line of prose this long or longer is taken for hard-wrapped text (wrapped at 60-80 columns, a
# line falls short of the width by at most its next word): its newline never ends a segment.
SHORT_LINE_CHARS = 50
# A line ending in one of these goes on in the next line: "apples,\nPears", "well-\nKnown".
_CONTINUING_ENDS = frozenset(",;:-–—/&+([{") | RUN_CHARS  # terminators: the sentence rules decided
# English words that do not end a sentence: a line ending in one was wrapped mid-sentence.
_CONTINUING_WORDS = frozenset(
    "a an the and or but nor of to in on at by for with from into onto than that whose if because as "
    "my your his her its our their".split()
)
# Skipped before the next line's first letter: `"Quoted`, `(Note`, `**Bold**`, `_Title_`.
_LINE_OPENERS = frozenset(OPENERS + "*_")
_MAX_LINE_OPENERS = 3
# Languages that capitalise nouns: there a capital does not show that a sentence starts.
_NOUN_CAPITALS = frozenset({"de", "lb"})


def prose_lines_end(language: str) -> bool:
    """Whether a capital at the start of a line shows a new sentence in `language`."""
    return language.replace("_", "-").split("-", 1)[0].lower() not in _NOUN_CAPITALS


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


@dataclass(frozen=True, slots=True)
class Line:
    """What a newline's verdict knows of its line: the current segment starts at
    `segment_start`, and `col` characters of the line precede it (earlier segments' text)."""

    segment_start: int
    col: int
    prose_ends: bool  # `prose_lines_end` of the segmenter's language


def decide_newline(
    buf: str, index: int, line: Line, marker: Marker, nesting: Nesting, end_of_text: bool
) -> Decision:
    """A blank line ends the segment; so does the end of a list item's or heading's line, a line
    break before a list item, and a line break between a finished short line and a capital. Any
    other single newline inside prose does not."""
    back, low = index - 1, max(line.segment_start, index - MAX_GAP)
    while back >= low and buf[back].isspace():
        if buf[back] == "\n":
            return break_at(index + 1)
        back -= 1
    if nesting.protects(index):
        return CONTINUE
    if marker.line_item:
        return break_at(index + 1)
    decision = _decide_line_start(buf, index + 1, end_of_text)
    if decision.verdict is not Verdict.CONTINUE or not line.prose_ends:
        return decision
    return _decide_prose_line(buf, index, line, end_of_text)


def _decide_prose_line(buf: str, index: int, line: Line, end_of_text: bool) -> Decision:
    """The newline at `index` ends the segment if its line is finished and short, and the next
    line starts with a capital (after at most a few opening quotes, brackets or emphasis marks)."""
    end, low = index, max(line.segment_start, index - MAX_GAP)
    while end > low and buf[end - 1].isspace():
        end -= 1
    if end == line.segment_start or buf[end - 1].isspace() or buf[end - 1] in _CONTINUING_ENDS:
        return CONTINUE
    # Only the last SHORT_LINE_CHARS characters are read: a line without a newline there is long.
    newline = buf.rfind("\n", max(line.segment_start, end - SHORT_LINE_CHARS), end)
    length = end - newline - 1 if newline >= 0 else end - line.segment_start + line.col
    if length >= SHORT_LINE_CHARS:
        return CONTINUE
    word = end
    while word > line.segment_start and buf[word - 1].isalpha():
        word -= 1
    if buf[word:end].lower() in _CONTINUING_WORDS:
        return CONTINUE
    first = _first_letter(buf, index + 1)
    if first is None:
        return CONTINUE if end_of_text else WAIT
    return break_at(index + 1) if first.isupper() else CONTINUE


def _first_letter(buf: str, begin: int) -> str | None:
    """The first character of the line at `begin` that is neither space nor opener; "" when the
    line is blank or too far indented, None when the buffered text does not reach it yet."""
    size = len(buf)
    index = _skip_indent(buf, begin)
    if index < 0:
        return ""
    openers = 0
    while index < size and buf[index] in _LINE_OPENERS and openers < _MAX_LINE_OPENERS:
        index += 1
        openers += 1
    if index >= size:
        return None
    return "" if buf[index] == "\n" else buf[index]


def _skip_indent(buf: str, begin: int) -> int:
    """Where the line at `begin` has its first non-space character (or ends, or the buffered text
    ends); -1 when it is indented by more than MAX_GAP."""
    size = len(buf)
    index = begin
    while index < size and buf[index] != "\n" and buf[index].isspace():
        index += 1
        if index - begin > MAX_GAP:
            return -1
    return index


def _decide_line_start(buf: str, begin: int, end_of_text: bool) -> Decision:
    """Does the line starting at `begin` start a list item or a heading?"""
    index = _skip_indent(buf, begin)
    if index < 0:
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
