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

See `docs/segmentation.md` for the rules, the options and the measured accuracy and speed.

Length bound: a segment never exceeds `max_chars` characters nor `max_bytes` UTF-8 bytes. When
the segment's text reaches a non-whitespace character that does not fit before any boundary, it
is cut by `limits.choose_cut` (best clause boundary, then whitespace, then hard), from the text
within the limit only. Buffered text therefore stays within the limit plus a bounded look-ahead.

Cost: each push scans only the new text (plus bounded windows), so a push costs O(new text)
however long the undecided segment is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum, auto
from functools import lru_cache

from .abbreviations import EXCLAMATION_WORDS, Abbreviations, abbreviations_for, spaced_forms
from .chars import (
    BULLETS,
    CJK_CLAUSE,
    CLAUSE_STRENGTH,
    CLOSERS,
    DOTS,
    OPENERS,
    QUESTION_EXCLAIM,
    RUN_CHARS,
    STRONG_TERMINATORS,
    is_cjk,
)
from .limits import LimitTracker, choose_cut
from .markup import Tag, TagScanner, protects_content
from .nesting import NESTING_CHARS, Nesting
from .segments import Ending, Segment, SegmentBuilder

__all__ = ["SentenceSegmenter", "split_segments", "split_sentences"]

# Bounds of the look-ahead windows, so the wait for a verdict and the buffer stay bounded.
_MAX_CLOSERS = 4  # more closers than this after a terminator: not a sentence end
_MAX_GAP = 16  # whitespace run after an ambiguous end longer than this: a sentence end
_MAX_OPENERS = 4  # more openers than this before the next word: not a sentence start
_MAX_WORD = 32  # a "word" before a period longer than this is an ordinary word
_MAX_STARTER = 12  # longest sentence-opener word looked up after "U.S." and the like
_MAX_SPACED_DOTS = 8  # ". . . ." runs are counted up to this many dots

_NON_SPACE_RE = re.compile(r"\S")
_WORD_START_RE = re.compile(r"(?<=\s)\S")
# Dotted acronyms without their final period: "U.S", "U.S.A", "a.m".
_ACRONYM_RE = re.compile(r"(?:[^\W\d_]\.)+[^\W\d_]")

# What a segment may start with: a bullet (•, "- ", "# ") and/or an enumerator ("1.", "2)",
# "3.)", "a.") followed by whitespace. `_MARKER_PREFIX_RE` matches every text that could still
# grow into one: while the buffered start of the segment matches it, the marker is undecided.
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


class _Verdict(Enum):
    BREAK = auto()
    CONTINUE = auto()
    WAIT = auto()


@dataclass(frozen=True, slots=True)
class _Decision:
    verdict: _Verdict
    end: int = 0  # BREAK: buffer index where the segment ends (exclusive)
    resume: int = 0  # CONTINUE: scan on from here (0: from the next character)


_CONTINUE = _Decision(_Verdict.CONTINUE)
_WAIT = _Decision(_Verdict.WAIT)


def _break(end: int) -> _Decision:
    return _Decision(_Verdict.BREAK, end)


class _WordKind(Enum):
    """What a single period after a word means."""

    ORDINARY = auto()  # ends the sentence
    NEVER_ENDS = auto()  # titles and initials: "Dr.", "Mt.", "J." (without starter lists)
    BEFORE_CAPITAL = auto()  # "etc.", "Inc.", "No.": ends before a capitalised word
    BEFORE_STARTER = auto()  # "U.S.", "a.m.", "E.": ends before a sentence-opening word


class _Next(Enum):
    """How the first word after an ambiguous end decides it."""

    UNLESS_LOWER = auto()  # ends unless a lower-case letter or a digit follows
    BEFORE_CAPITAL = auto()  # ends only before an upper-case letter
    BEFORE_STARTER = auto()  # ends only before a sentence-opening word


@dataclass(frozen=True, slots=True)
class _Marker:
    """How the segment starts: "• ", "- ", "# ", "1. ", "b) " or nothing."""

    length: int  # characters of the marker (bullet and enumerator, not the space after)
    next_item: str | None  # the enumerator the next list item would have ("2", "c")
    line_item: bool  # a list item or heading: a single newline ends it


_NO_MARKER = _Marker(0, None, False)


def _parse_marker(buf: str, start: int, end_of_text: bool) -> _Marker | None:
    """The marker at the segment start, or None while the buffered text cannot tell yet."""
    head = buf[start : start + _MARKER_WINDOW]
    if not end_of_text and len(head) < _MARKER_WINDOW and _MARKER_PREFIX_RE.fullmatch(head):
        return None
    match = _MARKER_RE.match(buf, start)
    if match is None or match.end() == start:
        return _NO_MARKER
    enum = match.group("enum")
    return _Marker(match.end() - start, _successor(enum), True)


def _successor(enum: str | None) -> str | None:
    if enum is None:
        return None
    if enum.isdigit():
        return str(int(enum) + 1)
    return chr(ord(enum) + 1) if enum != "z" else None


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
    _marker: _Marker | None
    _words: int
    _words_pos: int
    _waiting_at: int | None
    _pending: bool | None

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
        self._lists: Abbreviations = abbreviations_for(language)
        self._spaced, self._spaced_prefixes = spaced_forms(self._lists)
        self._eager_words = eager_first_segment
        self._limit = LimitTracker(max_chars, max_bytes)
        self._nesting = Nesting()
        self._tags = TagScanner()
        self._segments = SegmentBuilder()
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
            if decision.verdict is _Verdict.WAIT:
                assert not end_of_text, "every window is complete at the end of the text"
                self._pos = self._waiting_at = index
                break
            if decision.verdict is _Verdict.BREAK and self._fits(decision.end):
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

    def _segment_marker(self, end_of_text: bool) -> _Marker | None:
        if self._marker is None:
            self._marker = _parse_marker(self._buf, self._start, end_of_text)
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

    def _decide(self, index: int, marker: _Marker, end_of_text: bool) -> _Decision:
        if index < self._start + marker.length:
            return _CONTINUE  # part of the list marker: "1." "•"
        char = self._buf[index]
        if char in RUN_CHARS:
            return self._decide_terminator(index, end_of_text)
        if char == "\n":
            return self._decide_newline(index, marker, end_of_text)
        if char == "<":
            return self._decide_tag(index, end_of_text)
        if char in NESTING_CHARS:
            previous = self._buf[index - 1] if index > self._start else " "
            self._nesting.on_char(char, index, previous)
            return _CONTINUE
        if char in BULLETS:
            return self._decide_bullet(index)
        if char in CLAUSE_STRENGTH and self._eager:
            return self._decide_eager(index, end_of_text)
        if marker.next_item is not None and char == marker.next_item[0]:
            return self._decide_next_item(index, marker.next_item, end_of_text)
        return _CONTINUE

    def _decide_terminator(self, index: int, end_of_text: bool) -> _Decision:
        buf, size, start = self._buf, len(self._buf), self._start
        after = index + 1
        if after < size and buf[after] in RUN_CHARS:
            return _CONTINUE  # the run goes on; its last character decides
        if after >= size and not end_of_text:
            return _WAIT

        run_start = index
        while run_start > start and buf[run_start - 1] in RUN_CHARS:
            run_start -= 1
        run = buf[run_start:after]
        if _is_elision(buf, run, run_start, after, start):
            return _CONTINUE  # "[...]", "(…)": an omission mark inside a sentence
        spaced = self._spaced_dots(run, run_start, after, end_of_text)
        if isinstance(spaced, _Decision):
            return spaced

        end = self._skip_closers(after, end_of_text)
        if isinstance(end, _Decision):
            return end
        closers = buf[after:end]
        if self._nesting.protects_after_closers(closers, index):
            return _CONTINUE  # inside brackets, quotes or a markup element
        if end >= size:
            return _break(end)  # the end of the text
        follower = buf[end]
        if any(char in STRONG_TERMINATORS for char in run):
            return _break(end)  # CJK and danda need no space after them
        if not follower.isspace():
            if is_cjk(follower) and any(char in QUESTION_EXCLAIM for char in run):
                return _break(end)  # "你好!我" written with ASCII punctuation
            return _CONTINUE  # "3.50", "example.com", "e.g.,", "Jr.'s"

        chain = self._dotted_chain(run_start) if run == "." and not closers else ""
        if chain in self._spaced_prefixes:
            continued = self._continues_abbreviation(end, chain, end_of_text)
            if continued is not None:
                return continued  # "z." of "z. B.": the last part decides
        rule = self._rule_for_run(run, run_start, spaced, bool(closers), chain)
        if rule is None:
            return _break(end)
        if isinstance(rule, _Decision):
            return rule
        return self._decide_by_next_word(end, rule, end_of_text)

    def _spaced_dots(
        self, run: str, run_start: int, after: int, end_of_text: bool
    ) -> int | _Decision:
        """For a dot on its own (". . . ."): the number of dots in its spaced run, or a verdict
        while the run may go on (only its last dot is judged). 0 for any other run."""
        buf, size = self._buf, len(self._buf)
        if run != "." or (run_start > self._start and buf[run_start - 1] != " "):
            return 0
        if after < size and buf[after] == " ":
            if after + 1 >= size and not end_of_text:
                return _WAIT
            if after + 1 < size and buf[after + 1] == ".":
                return _CONTINUE
        count, index = 1, run_start
        while (
            count < _MAX_SPACED_DOTS
            and index - 2 >= self._start
            and buf[index - 1] == " "
            and buf[index - 2] == "."
        ):
            count += 1
            index -= 2
        return count

    def _skip_closers(self, after: int, end_of_text: bool) -> int | _Decision:
        """The index after the closing quotes/brackets that follow a terminator, or a verdict
        when there are too many of them or the text may still add one."""
        buf, size = self._buf, len(self._buf)
        end = after
        while end < size and buf[end] in CLOSERS:
            end += 1
            if end - after > _MAX_CLOSERS:
                return _CONTINUE
        if end >= size and not end_of_text:
            return _WAIT
        return end

    def _rule_for_run(
        self, run: str, run_start: int, spaced: int, closed: bool, chain: str
    ) -> _Next | _Decision | None:
        """How a run followed by whitespace is judged: None = it ends the sentence now,
        `_CONTINUE` = it does not, or the rule that lets the next word decide."""
        plain_end = _Next.UNLESS_LOWER if closed else None
        if any(char in QUESTION_EXCLAIM for char in run):
            if run == "!" and self._word_before(run_start).lower() in EXCLAMATION_WORDS:
                return _Next.BEFORE_CAPITAL  # "Yahoo! in" continues, "Yahoo! It" ends
            return plain_end
        if spaced:
            return _CONTINUE if spaced == 3 else plain_end  # ". . ." is inside a sentence
        dots = run.count(".") + 3 * run.count("…")
        if dots >= 4:
            return plain_end  # "...." and ". . . ." : an ellipsis plus a period
        if dots > 1:
            return _Next.UNLESS_LOWER  # "...", "…": ends unless the sentence goes on
        kind = self._classify_word(self._word_before(run_start), chain)
        if kind is _WordKind.ORDINARY:
            return plain_end
        if kind is _WordKind.NEVER_ENDS:
            return _Next.BEFORE_CAPITAL if closed else _CONTINUE
        if kind is _WordKind.BEFORE_CAPITAL:
            return _Next.BEFORE_CAPITAL
        return _Next.BEFORE_STARTER

    def _word_before(self, index: int) -> str:
        """The text from the last whitespace up to `index`, without leading openers; "" when
        it is longer than `_MAX_WORD` (such a word is no abbreviation)."""
        buf = self._buf
        low = max(self._start, index - _MAX_WORD)
        begin = index
        while begin > low and not buf[begin - 1].isspace():
            begin -= 1
        if begin == low and low > self._start and not buf[low - 1].isspace():
            return ""
        return buf[begin:index].lstrip(OPENERS)

    def _classify_word(self, word: str, chain: str) -> _WordKind:
        """What a single period after `word` means; `chain` is the word with the spaced
        abbreviation parts before it ("z.b" for the "B" of "z. B")."""
        lists = self._lists
        if chain in self._spaced:
            return _WordKind.NEVER_ENDS if chain in lists.titles else _WordKind.BEFORE_CAPITAL
        if len(word) == 1 and word.isalpha() and word.isupper():
            # An initial ("J. R. R. Tolkien") or the pronoun I ("you and I. Did you...").
            return _WordKind.BEFORE_STARTER if lists.sentence_starters else _WordKind.NEVER_ENDS
        lower = word.lower()
        if lower in lists.titles:
            return _WordKind.NEVER_ENDS
        if lower in lists.conditional or (len(word) == 1 and word.isalpha()):
            return _WordKind.BEFORE_CAPITAL
        if lists.ordinal_numbers and len(word) <= 2 and word.isascii() and word.isdigit():
            return _WordKind.NEVER_ENDS  # "am 3. Oktober"
        if _ACRONYM_RE.fullmatch(word):
            return _WordKind.BEFORE_STARTER if lists.sentence_starters else _WordKind.BEFORE_CAPITAL
        return _WordKind.ORDINARY

    def _dotted_chain(self, run_start: int) -> str:
        """The short word before the period at `run_start`, joined with the spaced parts of an
        abbreviation before it: "u" for "u.", "z.b" for "z. B.", "i.d" for "i. d." (lower-case).
        "" when the word is not 1-3 letters."""
        buf, start = self._buf, self._start
        begin = _short_word_start(buf, run_start, start)
        if begin < 0:
            return ""
        chain = buf[begin:run_start].lower()
        while begin - 2 > start and buf[begin - 1] == " " and buf[begin - 2] == ".":
            before = _short_word_start(buf, begin - 2, start)
            if before < 0:
                break
            longer = buf[before : begin - 2].lower() + "." + chain
            if longer not in self._spaced and longer not in self._spaced_prefixes:
                break
            chain, begin = longer, before
        return chain

    def _continues_abbreviation(self, end: int, chain: str, end_of_text: bool) -> _Decision | None:
        """After the "z." of "z. B.": CONTINUE if the next word completes or extends a spaced
        abbreviation, WAIT while that is open, None when it does not."""
        buf, size = self._buf, len(self._buf)
        index = end
        while index < size and buf[index] in " \t" and index - end < 2:
            index += 1
        letters = index
        while letters < size and buf[letters].isalpha() and letters - index < 3:
            letters += 1
        if letters >= size:
            return None if end_of_text else _WAIT
        if letters == index or buf[letters] != ".":
            return None
        longer = chain + "." + buf[index:letters].lower()
        return _CONTINUE if longer in self._spaced or longer in self._spaced_prefixes else None

    def _decide_by_next_word(self, end: int, rule: _Next, end_of_text: bool) -> _Decision:
        """After an ambiguous end: the next word decides. `end` indexes the whitespace after it."""
        buf, size = self._buf, len(self._buf)
        brk = _break(end)
        index, newlines = end, 0
        while index < size and buf[index].isspace():
            newlines += buf[index] == "\n"
            if newlines >= 2:
                return brk  # a paragraph break ends the segment here in any case
            index += 1
            if index - end > _MAX_GAP:
                return brk
        openers = 0
        while index < size and buf[index] in OPENERS:
            index += 1
            openers += 1
            if openers > _MAX_OPENERS:
                return _CONTINUE
        if index >= size:
            return brk if end_of_text else _WAIT
        first = buf[index]
        if rule is _Next.UNLESS_LOWER:
            return _CONTINUE if first.islower() or first.isdigit() else brk
        if not first.isupper():
            return _CONTINUE
        if rule is _Next.BEFORE_CAPITAL:
            return brk
        word_end = index
        while word_end < size and buf[word_end].isalpha():
            word_end += 1
            if word_end - index > _MAX_STARTER:
                return _CONTINUE
        if word_end >= size and not end_of_text:
            return _WAIT
        return brk if buf[index:word_end] in self._lists.sentence_starters else _CONTINUE

    def _decide_newline(self, index: int, marker: _Marker, end_of_text: bool) -> _Decision:
        """A blank line ends the segment; so does the end of a list item's or heading's line,
        and a line break before a list item. A single newline inside prose does not."""
        buf = self._buf
        back, low = index - 1, max(self._start, index - _MAX_GAP)
        while back >= low and buf[back].isspace():
            if buf[back] == "\n":
                return _break(index + 1)
            back -= 1
        if self._nesting.protects(index):
            return _CONTINUE
        if marker.line_item:
            return _break(index + 1)
        return self._decide_line_start(index + 1, end_of_text)

    def _decide_line_start(self, begin: int, end_of_text: bool) -> _Decision:
        """Does the line starting at `begin` start a list item or a heading?"""
        buf, size = self._buf, len(self._buf)
        index = begin
        while index < size and buf[index] != "\n" and buf[index].isspace():
            index += 1
            if index - begin > _MAX_GAP:
                return _CONTINUE
        head = buf[index : index + _LINE_ITEM_WINDOW]
        if _LINE_ITEM_RE.match(head):
            return _break(begin)
        if end_of_text or len(head) == _LINE_ITEM_WINDOW:
            return _CONTINUE
        # Too little text to tell: wait only while it could still become an item ("-", "12.").
        return _WAIT if _LINE_ITEM_PREFIX_RE.fullmatch(head) else _CONTINUE

    def _decide_tag(self, index: int, end_of_text: bool) -> _Decision:
        tag = self._tags.scan(self._buf, index, len(self._buf))
        if tag is True:
            return _CONTINUE if end_of_text else _WAIT
        if not isinstance(tag, Tag):
            return _CONTINUE  # "a < b": not markup
        if tag.closing:
            self._nesting.close_element(tag.name)
        elif protects_content(tag):
            self._nesting.open_element(tag.name, index)
        return _Decision(_Verdict.CONTINUE, resume=tag.end)

    def _decide_bullet(self, index: int) -> _Decision:
        """"• one • two": a bullet after whitespace starts a new segment."""
        after_space = index > self._start and self._buf[index - 1].isspace()
        return _break(index) if after_space and not self._nesting.protects(index) else _CONTINUE

    def _decide_next_item(self, index: int, item: str, end_of_text: bool) -> _Decision:
        """"1. one 2. two": the next enumerator of a list item starts a new segment."""
        buf = self._buf
        after = index + len(item)
        if buf[index:after] != item:
            if not end_of_text and item.startswith(buf[index:after]):
                return _WAIT  # "1" may still become "10"
            return _CONTINUE
        tail = buf[after : after + 3]
        if _ITEM_TAIL_RE.match(tail):
            return _CONTINUE if self._nesting.protects(index) else _break(index)
        if not end_of_text and tail in ("", ".", ")", ".)"):
            return _WAIT
        return _CONTINUE

    def _decide_eager(self, index: int, end_of_text: bool) -> _Decision:
        """Armed `eager_first_segment`: cut at a clause mark after enough words."""
        buf = self._buf
        if buf[index] not in CJK_CLAUSE:
            if index + 1 >= len(buf):
                return _CONTINUE if end_of_text else _WAIT
            if not buf[index + 1].isspace():
                return _CONTINUE  # "1,000", "a—b"
        if self._nesting.protects(index):
            return _CONTINUE
        assert self._eager_words is not None
        if self._word_count(index) < self._eager_words:
            return _CONTINUE
        return _break(index + 1)

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
        if index is None or self._marker is None or self._buf[index] == "<":
            return False
        buf = self._buf
        limit_state = self._limit.snapshot()
        words_state = (self._words, self._words_pos)
        self._buf = buf + " A"
        try:
            decision = self._decide(index, self._marker, end_of_text=True)
            ok = decision.verdict is _Verdict.BREAK and self._fits(decision.end)
        finally:
            self._buf = buf
            self._limit.restore(limit_state)
            self._words, self._words_pos = words_state
        return ok and not buf[decision.end :].strip()


def _short_word_start(buf: str, end: int, start: int) -> int:
    """Start of the 1-3 letter word ending at `end` (preceded by whitespace or the segment
    start), or -1."""
    begin = end
    while begin > start and buf[begin - 1].isalpha() and end - begin < 3:
        begin -= 1
    if begin == end or (begin > start and not buf[begin - 1].isspace()):
        return -1
    return begin


def _is_elision(buf: str, run: str, run_start: int, after: int, start: int) -> bool:
    """Is `run` (at `buf[run_start:after]`) a dot run wrapped as "[...]" or "(…)"?"""
    return (
        run_start > start
        and buf[run_start - 1] in "[("
        and after < len(buf)
        and buf[after] in "])"
        and all(char in DOTS for char in run)
    )


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


def split_sentences(
    text: str,
    *,
    max_chars: int = 300,
    max_bytes: int | None = None,
    language: str = "en",
    eager_first_segment: int | None = None,
) -> list[str]:
    """The texts of `split_segments(text, ...)`."""
    segments = split_segments(
        text,
        max_chars=max_chars,
        max_bytes=max_bytes,
        language=language,
        eager_first_segment=eager_first_segment,
    )
    return [segment.text for segment in segments]
