"""Incremental sentence segmentation for text that arrives a few characters at a time.

Design
------
The segmenter keeps the text of the current, undecided segment in a buffer and a scan position
in it. Everything before the scan position is known not to end the segment. Each push scans on
from there with one regular expression that finds *events*: sentence punctuation
(`. ! ? … 。 ！ ？ । ॥`), newlines, brackets and quotes, `<` (a possible tag), list bullets, and,
when they matter, clause punctuation (`eager_first_segment`) and the next list enumerator.

Every event gets a verdict that depends only on a bounded window of text around it and on what
the scan has seen before it in the segment (open brackets, the list marker it starts with):

- BREAK: the segment ends here (at an index given with the verdict); it is emitted at once.
- CONTINUE: not a boundary; the scan moves past it (past the whole tag for `<`).
- WAIT: the window is not complete yet (the text stops inside it). Scanning pauses on this
  event and resumes with the next push. At `flush()` the end of the text is known and the
  window is judged with that end in it, so a verdict is never WAIT there.

Because a verdict never changes once its window is complete, the output is the same however the
text is chunked: `push` and `flush` in any pieces give exactly `split_segments(text)`. (How a
segment ended and whether a blank line precedes it are functions of the text too: see
`segments`.) Because a verdict is issued as soon as its window is complete, nothing waits longer
than needed:

- "Hello world. ", "Really?! ", "你好。我" are emitted by the character after the terminator: no
  look-ahead beyond it (that character may still turn "world." into "world.com" or close a
  quote, so a terminator at the very end of the text waits for it).
- Ambiguous ends wait for the next non-space character: "etc. " and "Inc. " (a sentence ends
  only before a capital), a terminator followed by a closing quote or bracket (`"Stop." she
  said` continues before lower case), ellipses, ". . . ." runs, "Yahoo!".
- One class waits for the next *word*: a dotted acronym or an initial before a capitalised word
  ("U.S. Government" continues, "the U.S. How about" ends): English only, where a list of
  common sentence openers decides. That word is at most 12 letters long.

The rules that judge events live beside this module: `sentence_ends` (terminators), `layout`
(blank lines, list items and headings, bullets), `markup` and `nesting` (what protects text from
a cut), `limits` (the length bound), and `segments` (the typed output). See
`docs/segmentation.md` for the rules, the options and the measured accuracy and speed.

Length bound: a segment never exceeds `max_chars` characters nor `max_bytes` UTF-8 bytes. When
the segment's text reaches a non-whitespace character that does not fit before any boundary, it
is cut by `limits.choose_cut` (best clause boundary, then whitespace, then hard), from the text
within the limit only. Buffered text therefore stays within the limit plus a bounded look-ahead.

Cost: each push scans only the new text (plus bounded windows), so a push costs O(new text)
however long the undecided segment is.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from .chars import BULLETS, CJK_CLAUSE, CLAUSE_STRENGTH, RUN_CHARS
from .layout import Line, Marker, decide_bullet, decide_newline, decide_next_item, parse_marker, prose_lines_end
from .limits import LimitTracker, choose_cut
from .markup import Tag, TagScanner, protects_content
from .nesting import NESTING_CHARS, Nesting
from .segments import Ending, Segment, SegmentBuilder
from .sentence_ends import SentenceEnds
from .verdicts import CONTINUE, WAIT, Decision, Verdict, break_at

__all__ = ["SentenceSegmenter", "split_segments", "split_sentences"]

_NON_SPACE_RE = re.compile(r"\S")
_WORD_START_RE = re.compile(r"(?<=\s)\S")

_EVENT_CHARS = (
    "".join(sorted(RUN_CHARS)) + "\n<" + BULLETS + NESTING_CHARS
)


@lru_cache(maxsize=128)
def _events_re(eager: bool, next_item: str | None) -> re.Pattern[str]:
    """The event pattern; clause marks only while `eager_first_segment` is armed, and the next
    list enumerator ("2", "b") only after whitespace and only in a list item."""
    chars = _EVENT_CHARS + ("".join(CLAUSE_STRENGTH) if eager else "")
    pattern = "[" + re.escape("".join(sorted(set(chars)))) + "]"
    if next_item is not None:
        # Only its first character: the event must be found even when the text stops inside it.
        pattern += r"|(?<=\s)" + re.escape(next_item[0])
    return re.compile(pattern)


class SentenceSegmenter:
    """Splits streamed text into sentences as soon as each one is certain.

    `push(text)` returns the segments completed by `text`; `flush()` returns the rest and
    leaves the segmenter empty for reuse; `reset()` drops the buffered text (barge-in).
    Segments are `Segment`s: stripped, never empty text, how it ended, and whether a blank line
    precedes it. See the module docstring for the design and
    `docs/segmentation.md` for the rules.

    - `max_chars`, `max_bytes`: no segment is longer (characters; UTF-8 bytes, at least 4).
    - `language`: ISO code ("en", "de-DE", "pt_BR") choosing the abbreviation lists;
      unknown languages use English.
    - `eager_first_segment`: when set to N, the first segment (after construction or
      `reset()`) ends at the first clause mark (`,` `;` `:` `—` + space) preceded by at least
      N words, so that synthesis of a long first sentence can start early.
    """

    # Scan state, set by `_clear` and `_begin_segment` (see there).
    _buf: str
    _start: int
    _pos: int
    _spaces_until: int
    _marker: Marker | None
    _words: int
    _words_pos: int
    _waiting_at: int | None
    _pending: bool | None
    _line_col: int

    def __init__(
        self,
        *,
        max_chars: int = 300,
        max_bytes: int | None = None,
        language: str = "en",
        eager_first_segment: int | None = None,
    ) -> None:
        if max_chars < 1:
            raise ValueError("max_chars must be at least 1")
        if max_bytes is not None and max_bytes < 4:
            raise ValueError("max_bytes must be at least 4 (one character can take 4 bytes)")
        if eager_first_segment is not None and eager_first_segment < 1:
            raise ValueError("eager_first_segment must be at least 1 word")
        self._sentence_ends = SentenceEnds(language)
        self._eager_words = eager_first_segment
        self._limit = LimitTracker(max_chars, max_bytes)
        self._nesting = Nesting()
        self._tags = TagScanner()
        self._segments = SegmentBuilder()
        self._prose_lines_end = prose_lines_end(language)
        self._line_col = 0  # characters of the current line before the segment start
        self._clear()
        self._eager = eager_first_segment is not None

    # -- public API ---------------------------------------------------------------------------

    @property
    def pending_chars(self) -> int:
        """Number of buffered characters whose segment is not decided yet."""
        return len(self._buf) - self._start

    @property
    def pending_boundary(self) -> bool:
        """True when the undecided text ends at a possible boundary that only more text can
        confirm, so that `flush()` now would cut exactly there.

        "Hello world." (could become "world.com"), "Acme Inc. " (ends before a capital),
        "你好。" (a closing bracket may follow): True. "Hello wor", "Dr. ", "the U.S. Gov": False.
        A caller that sees no new text for a while can flush() when this is True without
        cutting a sentence in the middle.
        """
        if self._pending is None:
            self._pending = self._probe_pending_boundary()
        return self._pending

    def push(self, text: str) -> list[Segment]:
        """Add `text`; return the segments it completed, in order."""
        if not text:
            return []
        # Drop the attribute's reference first so that CPython can grow the string in place:
        # appending stays O(len(text)) instead of copying the whole buffer.
        buf = self._buf
        self._buf = ""
        buf += text
        self._buf = buf
        self._pending = None
        return self._drain(end_of_text=False)

    def flush(self) -> list[Segment]:
        """End of text: return the buffered rest as segments and start over empty.

        Unlike `reset()`, this does not re-arm `eager_first_segment` nor forget the whitespace
        after the last segment (a blank line there still opens a paragraph): the stream goes on.
        """
        segments = self._drain(end_of_text=True)
        self._clear()
        return segments

    def reset(self) -> None:
        """Drop the buffered text without emitting it; the next segment is a first one again."""
        self._clear()
        self._segments.reset()
        self._line_col = 0
        self._eager = self._eager_words is not None

    # -- state --------------------------------------------------------------------------------

    def _clear(self) -> None:
        self._buf = ""
        self._start = 0  # the current segment starts here; earlier text is already emitted
        self._pos = 0  # next index to scan: no boundary in buf[start:pos]
        self._spaces_until = 0  # buf[limit:spaces_until] is known all-whitespace
        self._marker = None  # how the current segment starts, once known
        self._words = 0  # eager: words in buf[start:words_pos]
        self._words_pos = -1
        self._waiting_at = None  # the event the scan waits on
        self._pending = None  # cached pending_boundary
        self._limit.restart(0)
        self._nesting.clear()
        self._tags = TagScanner()

    def _begin_segment(self, start: int) -> None:
        # The line's length before the new start, for the newline rule: it survives flush() like
        # the text before it (the stream goes on), and is a function of the text like all state.
        newline = self._buf.rfind("\n", self._start, start)
        self._line_col = start - newline - 1 if newline >= 0 else self._line_col + start - self._start
        self._start = self._pos = start
        self._spaces_until = 0
        self._marker = None
        self._words_pos = -1
        self._limit.restart(start)
        self._nesting.clear()

    # -- scanning -----------------------------------------------------------------------------

    def _drain(self, *, end_of_text: bool) -> list[Segment]:
        """Emit every segment that the buffered text decides; keep the undecided rest."""
        out: list[Segment] = []
        self._waiting_at = None
        while self._skip_leading_space():
            marker = self._segment_marker(end_of_text)
            if marker is None:
                break  # the segment's first characters may still be a list marker
            overflow = self._overflow()
            stop = len(self._buf) if overflow is None else overflow
            events = _events_re(self._eager, marker.next_item)
            match = events.search(self._buf, self._pos, stop)
            if match is None:
                if overflow is None:
                    self._pos = len(self._buf)
                    break
                limit = self._limit.limit(self._buf)
                assert limit is not None
                self._emit(out, choose_cut(self._buf, self._start, limit), Ending.FORCED)
                continue
            index = match.start()
            self._nesting.expire(index)
            decision = self._decide(index, marker, end_of_text)
            if decision.verdict is Verdict.WAIT:
                assert not end_of_text, "every window is complete at the end of the text"
                self._pos = self._waiting_at = index
                break
            if decision.verdict is Verdict.BREAK and self._fits(decision.end):
                # Punctuation names the ending (see `ending_of`); a rule break without any is
                # the layout's: a blank line, a list item, a bullet.
                self._emit(out, decision.end, Ending.LINE)
            else:
                self._pos = decision.resume or index + 1
        if end_of_text:
            # No event left and nothing beyond the limit: the rest is one segment.
            self._emit(out, len(self._buf), Ending.FLUSH)
        self._compact()
        return out

    def _skip_leading_space(self) -> bool:
        """Move the segment start past whitespace; False when nothing else is buffered."""
        match = _NON_SPACE_RE.search(self._buf, self._start)
        start = match.start() if match else len(self._buf)
        if start != self._start:
            self._segments.skip(self._buf[self._start : start])
            self._begin_segment(start)
        return match is not None

    def _segment_marker(self, end_of_text: bool) -> Marker | None:
        if self._marker is None:
            self._marker = parse_marker(self._buf, self._start, end_of_text)
        return self._marker

    def _overflow(self) -> int | None:
        """Index of the first non-whitespace character that does not fit, if present.

        Whitespace beyond the limit alone is no overflow: it may turn out to be the end of the
        text, and segments are stripped.
        """
        limit = self._limit.limit(self._buf)
        if limit is None or len(self._buf) <= limit:
            return None
        match = _NON_SPACE_RE.search(self._buf, max(limit, self._spaces_until))
        # Remember how far the text is known to be whitespace: no rescans while spaces trickle in.
        self._spaces_until = match.start() if match else len(self._buf)
        return match.start() if match else None

    def _fits(self, end: int) -> bool:
        """Does the segment `buf[start:end]` (stripped) fit the length limits?"""
        limit = self._limit.limit(self._buf)
        return limit is None or end <= limit or self._buf[limit:end].isspace()

    def _emit(self, out: list[Segment], end: int, cut: Ending) -> None:
        """Emit `buf[start:end]`, which ends for the reason `cut` unless punctuation says more."""
        assert end > self._start or end == len(self._buf), "a segment cannot be empty"
        segment = self._segments.build(self._buf[self._start : end], cut)
        if segment is not None:
            out.append(segment)
            self._eager = False
        self._begin_segment(end)

    def _compact(self) -> None:
        """Drop emitted text so the buffer holds only the undecided segment."""
        shift = self._start
        if not shift:
            return
        self._buf = self._buf[shift:]
        self._start = 0
        self._pos -= shift
        self._spaces_until = max(0, self._spaces_until - shift)
        if self._words_pos >= 0:
            self._words_pos -= shift
        if self._waiting_at is not None:
            self._waiting_at -= shift
        self._limit.shift(shift)
        self._nesting.shift(shift)
        self._tags.shift(shift)

    # -- verdicts -----------------------------------------------------------------------------

    def _decide(self, index: int, marker: Marker, end_of_text: bool) -> Decision:
        if index < self._start + marker.length:
            return CONTINUE  # part of the list marker: "1." "•"
        char = self._buf[index]
        if char in RUN_CHARS:
            return self._sentence_ends.decide(self._buf, self._start, index, self._nesting, end_of_text)
        if char == "\n":
            line = Line(self._start, self._line_col, self._prose_lines_end)
            return decide_newline(self._buf, index, line, marker, self._nesting, end_of_text)
        if char == "<":
            return self._decide_tag(index, end_of_text)
        if char in NESTING_CHARS:
            previous = self._buf[index - 1] if index > self._start else " "
            self._nesting.on_char(char, index, previous)
            return CONTINUE
        if char in BULLETS:
            return decide_bullet(self._buf, self._start, index, self._nesting)
        if char in CLAUSE_STRENGTH and self._eager:
            return self._decide_eager(index, end_of_text)
        if marker.next_item is not None and char == marker.next_item[0]:
            return decide_next_item(self._buf, index, marker.next_item, self._nesting, end_of_text)
        return CONTINUE

    def _decide_tag(self, index: int, end_of_text: bool) -> Decision:
        tag = self._tags.scan(self._buf, index, len(self._buf))
        if tag is True:
            return CONTINUE if end_of_text else WAIT
        if not isinstance(tag, Tag):
            return CONTINUE  # "a < b": not markup
        if tag.closing:
            self._nesting.close_element(tag.name)
        elif protects_content(tag):
            self._nesting.open_element(tag.name, index)
        return Decision(Verdict.CONTINUE, resume=tag.end)

    def _decide_eager(self, index: int, end_of_text: bool) -> Decision:
        """Armed `eager_first_segment`: cut at a clause mark after enough words."""
        buf = self._buf
        if buf[index] not in CJK_CLAUSE:
            if index + 1 >= len(buf):
                return CONTINUE if end_of_text else WAIT
            if not buf[index + 1].isspace():
                return CONTINUE  # "1,000", "a—b"
        if self._nesting.protects(index):
            return CONTINUE
        assert self._eager_words is not None
        if self._word_count(index) < self._eager_words:
            return CONTINUE
        return break_at(index + 1)

    def _word_count(self, index: int) -> int:
        """Words (runs of non-space) that start in buf[start:index + 1]; counted incrementally."""
        if self._words_pos < 0:
            self._words, self._words_pos = 1, self._start + 1
        if index + 1 > self._words_pos:
            self._words += len(_WORD_START_RE.findall(self._buf, self._words_pos, index + 1))
            self._words_pos = index + 1
        return self._words

    # -- pending_boundary -----------------------------------------------------------------------

    def _probe_pending_boundary(self) -> bool:
        """Judge the event the scan waits on as if a new sentence (" A") followed."""
        index = self._waiting_at
        if index is None or self._marker is None or self._buf[index] in "<\n":
            return False  # a tag; a line break: a timeout does not end a line that a capital would
        buf = self._buf
        limit_state = self._limit.snapshot()
        words_state = (self._words, self._words_pos)
        self._buf = buf + " A"
        try:
            decision = self._decide(index, self._marker, end_of_text=True)
            ok = decision.verdict is Verdict.BREAK and self._fits(decision.end)
        finally:
            self._buf = buf
            self._limit.restore(limit_state)
            self._words, self._words_pos = words_state
        return ok and not buf[decision.end :].strip()


def split_segments(
    text: str,
    *,
    max_chars: int = 300,
    max_bytes: int | None = None,
    language: str = "en",
    eager_first_segment: int | None = None,
) -> list[Segment]:
    """Split a whole text exactly as a `SentenceSegmenter` fed with it would."""
    seg = SentenceSegmenter(
        max_chars=max_chars,
        max_bytes=max_bytes,
        language=language,
        eager_first_segment=eager_first_segment,
    )
    return seg.push(text) + seg.flush()


def split_sentences(text: str, **options: Any) -> list[str]:
    """The texts of `split_segments(text, **options)` (the same keyword options)."""
    return [segment.text for segment in split_segments(text, **options)]
