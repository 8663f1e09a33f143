"""What the segmenter emits: a segment's text, how it ended, and whether it opens a paragraph.

A session needs more than the text to voice a segment well: the pause after it depends on how it
ended (a sentence, a clause, a cut for length), and a blank line before it asks for a longer one.
The segmenter knows both while it cuts, so it says so here instead of leaving callers to guess
from the text with character sets of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .chars import CLAUSE_STRENGTH, CLOSERS, RUN_CHARS

__all__ = ["Ending", "Segment", "SegmentBuilder"]

_CLOSING = "".join(CLOSERS)


class Ending(Enum):
    """How a segment ended: read from its last character when that is punctuation (closing
    quotes and brackets skipped), otherwise from why the segmenter cut there."""

    SENTENCE = "sentence"
    """It ends with sentence punctuation (`. ! ? … 。 ！ ？ । ॥ ؟`): a sentence end found by the
    rules, or a flush of text that ends with a terminator ("Talk to Dr." flushed)."""
    CLAUSE = "clause"
    """It ends with clause punctuation (`, ; : — –` and CJK `，；：、`): an eager first segment, an
    overlong sentence cut at a clause mark, or text flushed just after one."""
    FORCED = "forced"
    """The length bound cut it at a space or, inside one long word, anywhere."""
    LINE = "line"
    """The layout ended it, without punctuation: a blank line, the end of a list item's or
    heading's line, a line break before a list item, a bullet, the next enumerator, a line break
    after a short line without a stop before a capital."""
    FLUSH = "flush"
    """The text ended or was flushed (`flush()`, a boundary timeout) with no punctuation."""


@dataclass(frozen=True, slots=True)
class Segment:
    text: str
    """Stripped, never empty."""
    ending: Ending
    paragraph_start: bool = False
    """A blank line (two line breaks with only whitespace between) precedes it in the text, or
    it is the first segment and the text starts with one."""


def ending_of(text: str, cut: Ending) -> Ending:
    """The ending of the segment `text`, which the segmenter ended for the reason `cut`."""
    last = text.rstrip(_CLOSING)[-1:]
    if last in RUN_CHARS:
        return Ending.SENTENCE
    if last in CLAUSE_STRENGTH:
        return Ending.CLAUSE
    return cut


class SegmentBuilder:
    """Makes `Segment`s from the raw slices the segmenter cuts, and counts the line breaks in
    the whitespace between two segments, which the segmenter skips or cuts off around them.

    A blank line is known only once the next segment is cut; the flag belongs to that segment.
    The count survives `flush()` (the stream goes on: "One.\\n\\n", a flush, "Two." still opens
    a paragraph) and is dropped by `reset()`.
    """

    __slots__ = ("_newlines",)

    def __init__(self) -> None:
        self._newlines = 0

    def skip(self, whitespace: str) -> None:
        """Whitespace between segments."""
        if self._newlines < 2:
            self._newlines += whitespace.count("\n")

    def build(self, raw: str, cut: Ending) -> Segment | None:
        """The segment in `raw` (whitespace around it included), None when it is only whitespace."""
        text = raw.strip()
        if not text:
            self.skip(raw)
            return None
        lead = len(raw) - len(raw.lstrip())
        self.skip(raw[:lead])
        segment = Segment(text, ending_of(text, cut), self._newlines >= 2)
        self._newlines = 0
        self.skip(raw[lead + len(text) :])
        return segment

    def reset(self) -> None:
        self._newlines = 0
