"""Incremental sentence segmentation for text that arrives a few characters at a time.

Design
------
The segmenter keeps the text of the current, undecided segment in a buffer and a scan position
in it. Everything before the scan position is known not to end the segment. Each push scans on
from there, looking at *candidates*: sentence punctuation (`. ! ? … 。 ！ ？`) and newlines.

Every candidate gets a verdict that depends only on a small window of text around it:

- BREAK: the segment ends here; it is emitted at once.
- CONTINUE: not a boundary; the scan moves past it.
- WAIT: the window is not complete yet (the text stops inside it). Scanning pauses on this
  candidate and resumes with the next push. At `flush()` the end of the text is known, and the
  window is judged with that end in it, so a verdict is never WAIT there.

Because a verdict never changes once the window is complete, the output is the same however the
text is chunked: `push` and `flush` in any pieces give exactly `split_sentences(text)`. And
because a verdict is issued as soon as its window is complete, nothing waits longer than needed:
"Hello world. " is emitted when the space arrives; only abbreviations that depend on the case of
the next word ("Inc.", "etc.", "U.S.") wait for that word. Every terminator, CJK ones included,
needs the character after it to be seen (or the end of the text), because a closing quote or
bracket there belongs to the sentence: "「こんにちは。」".

Length bound: a segment never exceeds `max_chars`. When the segment's text reaches a
non-whitespace character at offset `max_chars` before any boundary, it is cut at the last
clause punctuation (`,;:` + space) within the first `max_chars` characters, else at the last
whitespace, else hard at `max_chars`. Buffered text therefore stays around `max_chars` plus a
few characters of look-ahead (runs of whitespace are kept as they are).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum, auto

from .abbreviations import Abbreviations, abbreviations_for

__all__ = ["SentenceSegmenter", "split_sentences"]

# Sentence punctuation. Consecutive ones form a run ("?!", "...") and only the last one of a
# run is judged, so "?!" is one terminator.
_LATIN_TERMINATORS = ".!?…"
_CJK_TERMINATORS = "。！？"
_RUN_CHARS = frozenset(_LATIN_TERMINATORS + _CJK_TERMINATORS)

# Closing quotes/brackets that stay with the sentence they close ("Hi." she said -> `"Hi."`).
_CLOSERS = frozenset("\"'”’)]」』）】》»")
# Opening quotes/brackets that may precede a word: skipped to find a word's first letter.
_OPENERS = "\"'“‘([「『（【《«"

# Bounds of the look-ahead window, so the wait for a verdict and the buffer stay bounded.
_MAX_CLOSERS = 4  # more closers than this after a terminator: not a sentence end
_MAX_GAP = 16  # whitespace run after an abbreviation longer than this: a sentence end
_MAX_OPENERS = 4  # more openers than this before the next word: not capitalised

_CANDIDATE_RE = re.compile(r"[.!?…。！？\n]")
_NON_SPACE_RE = re.compile(r"\S")
_CLAUSE_CUT_RE = re.compile(r"[,;:](?=\s)")
# Dotted acronyms without their final period: "U.S", "U.S.A", "a.m".
_ACRONYM_RE = re.compile(r"(?:[^\W\d_]\.)+[^\W\d_]")


class _Verdict(Enum):
    BREAK = auto()
    CONTINUE = auto()
    WAIT = auto()


@dataclass(frozen=True, slots=True)
class _Decision:
    verdict: _Verdict
    end: int = 0  # for BREAK: absolute buffer index where the segment ends (exclusive)


_CONTINUE = _Decision(_Verdict.CONTINUE)
_WAIT = _Decision(_Verdict.WAIT)


class _WordKind(Enum):
    ORDINARY = auto()  # a period after it ends the sentence
    NEVER_ENDS = auto()  # titles and initials: "Dr.", "J."
    ENDS_BEFORE_CAPITAL = auto()  # "etc.", "Inc.", "U.S.": depends on the next word


def _classify_word(word: str, abbreviations: Abbreviations) -> _WordKind:
    """What a single period after `word` (the text since the last whitespace) means."""
    word = word.lstrip(_OPENERS)
    lower = word.lower()
    if lower in abbreviations.titles:
        return _WordKind.NEVER_ENDS
    if lower in abbreviations.conditional:
        return _WordKind.ENDS_BEFORE_CAPITAL
    if len(word) == 1 and word.isalpha() and word.isupper():
        return _WordKind.NEVER_ENDS  # an initial: "J. R. R. Tolkien"
    if _ACRONYM_RE.fullmatch(word):
        return _WordKind.ENDS_BEFORE_CAPITAL
    return _WordKind.ORDINARY


class SentenceSegmenter:
    """Splits streamed text into sentences as soon as each one is certain.

    `push(text)` returns the segments completed by `text`; `flush()` returns the rest and
    leaves the segmenter empty for reuse; `reset()` drops the buffered text (barge-in).
    Segments are stripped and never empty. See the module docstring for the rules.
    """

    def __init__(self, *, max_chars: int = 300, language: str = "en") -> None:
        if max_chars < 1:
            raise ValueError("max_chars must be at least 1")
        self._max_chars = max_chars
        self._abbreviations = abbreviations_for(language)
        self._buf = ""
        self._start = 0  # the current segment starts here; earlier text is already emitted
        self._pos = 0  # next index to scan: no boundary in buf[start:pos]
        self._spaces_until = 0  # buf[start + max_chars : spaces_until] is known all-whitespace

    @property
    def pending_chars(self) -> int:
        """Number of buffered characters whose segment is not decided yet."""
        return len(self._buf) - self._start

    def push(self, text: str) -> list[str]:
        """Add `text`; return the segments it completed, in order."""
        if not text:
            return []
        self._buf += text
        return self._drain(end_of_text=False)

    def flush(self) -> list[str]:
        """End of text: return the buffered rest as segments and start over empty."""
        segments = self._drain(end_of_text=True)
        self.reset()
        return segments

    def reset(self) -> None:
        """Drop the buffered text without emitting it."""
        self._buf = ""
        self._start = self._pos = self._spaces_until = 0

    # -- scanning ---------------------------------------------------------------------------

    def _drain(self, *, end_of_text: bool) -> list[str]:
        """Emit every segment that the buffered text decides; keep the undecided rest."""
        out: list[str] = []
        while self._skip_leading_space():
            limit = self._start + self._max_chars
            overflow = self._first_char_beyond(limit)
            # Only candidates before the overflow character can end this segment within
            # max_chars; the search stops there so that long text is not rescanned per cut.
            stop = len(self._buf) if overflow is None else overflow
            match = _CANDIDATE_RE.search(self._buf, self._pos, stop)
            if match is None:
                if overflow is None:
                    self._pos = len(self._buf)
                    break
                self._emit(out, self._cut_point(limit))
                continue
            index = match.start()
            decision = self._decide(index, end_of_text)
            if decision.verdict is _Verdict.WAIT:
                assert not end_of_text, "every window is complete at the end of the text"
                self._pos = index
                break
            if decision.verdict is _Verdict.CONTINUE:
                self._pos = index + 1
            else:
                self._emit(out, decision.end)
        if end_of_text:
            # No candidate left and no character beyond max_chars: the rest is one segment.
            self._emit(out, len(self._buf))
        self._compact()
        return out

    def _skip_leading_space(self) -> bool:
        """Move the segment start past whitespace; False when nothing else is buffered."""
        match = _NON_SPACE_RE.search(self._buf, self._start)
        self._start = match.start() if match else len(self._buf)
        self._pos = max(self._pos, self._start)
        return match is not None

    def _first_char_beyond(self, limit: int) -> int | None:
        """Index of the first non-whitespace character at or after `limit`, if present.

        Its arrival means the segment has more than max_chars characters of text. Whitespace
        there alone does not: it may turn out to be the end of the text.
        """
        if len(self._buf) <= limit:
            return None
        match = _NON_SPACE_RE.search(self._buf, max(limit, self._spaces_until))
        # Remember how far the text is known to be whitespace: no rescans while spaces trickle in.
        self._spaces_until = match.start() if match else len(self._buf)
        return match.start() if match else None

    def _emit(self, out: list[str], end: int) -> None:
        segment = self._buf[self._start : end].strip()
        if segment:
            out.append(segment)
        self._start = self._pos = end
        self._spaces_until = 0

    def _compact(self) -> None:
        """Drop emitted text so the buffer holds only the undecided segment."""
        shift = self._start
        if shift:
            self._buf = self._buf[shift:]
            self._start = 0
            self._pos -= shift
            self._spaces_until = max(0, self._spaces_until - shift)

    # -- the length bound ---------------------------------------------------------------------

    def _cut_point(self, limit: int) -> int:
        """Where to cut a segment that outgrew max_chars (its first max_chars+1 chars decide).

        Prefer the last clause punctuation followed by a space, then the last whitespace,
        then a hard cut at max_chars: speech sounds most natural cut at a pause.
        """
        buf, start = self._buf, self._start
        clause_ends = [m.end() for m in _CLAUSE_CUT_RE.finditer(buf, start, limit + 1)]
        if clause_ends:
            return clause_ends[-1]
        for index in range(limit, start, -1):
            if buf[index].isspace():
                return index
        return limit

    # -- verdicts -------------------------------------------------------------------------------

    def _decide(self, index: int, end_of_text: bool) -> _Decision:
        if self._buf[index] == "\n":
            return self._decide_newline(index)
        return self._decide_terminator(index, end_of_text)

    def _decide_newline(self, index: int) -> _Decision:
        """A newline ends the segment when the whitespace before it holds another newline."""
        buf = self._buf
        back = index - 1
        while back >= self._start and buf[back].isspace():
            if buf[back] == "\n":
                return _Decision(_Verdict.BREAK, index + 1)
            back -= 1
        return _CONTINUE

    def _decide_terminator(self, index: int, end_of_text: bool) -> _Decision:
        buf, size = self._buf, len(self._buf)
        after = index + 1
        if after < size and buf[after] in _RUN_CHARS:
            return _CONTINUE  # the run goes on; its last character decides
        if after >= size and not end_of_text:
            return _WAIT

        end = after
        while end < size and buf[end] in _CLOSERS:
            end += 1
            if end - after > _MAX_CLOSERS:
                return _CONTINUE
        if end - self._start > self._max_chars:
            return _CONTINUE  # too long to end here; the length cut will split it
        if end >= size:
            return _Decision(_Verdict.BREAK, end) if end_of_text else _WAIT

        run_start = index
        while run_start > self._start and buf[run_start - 1] in _RUN_CHARS:
            run_start -= 1
        run = buf[run_start:after]
        if any(char in _CJK_TERMINATORS for char in run):
            return _Decision(_Verdict.BREAK, end)  # CJK needs no space after it
        if not buf[end].isspace():
            return _CONTINUE  # "3.50", "world.com", "e.g.,"
        if run != ".":
            return _Decision(_Verdict.BREAK, end)  # "!", "?!", "...": never abbreviations

        kind = _classify_word(self._word_before(run_start), self._abbreviations)
        if kind is _WordKind.ORDINARY:
            return _Decision(_Verdict.BREAK, end)
        if kind is _WordKind.NEVER_ENDS:
            return _CONTINUE
        return self._decide_by_next_word(end, end_of_text)

    def _word_before(self, index: int) -> str:
        """The text from the last whitespace (or the segment start) up to `index`."""
        buf = self._buf
        begin = index
        while begin > self._start and not buf[begin - 1].isspace():
            begin -= 1
        return buf[begin:index]

    def _decide_by_next_word(self, end: int, end_of_text: bool) -> _Decision:
        """After "etc." and the like: a sentence ends only before a capitalised word.

        `end` indexes the whitespace after the abbreviation (and its closers).
        """
        buf, size = self._buf, len(self._buf)
        brk = _Decision(_Verdict.BREAK, end)
        index, newlines = end, 0
        while index < size and buf[index].isspace():
            newlines += buf[index] == "\n"
            if newlines >= 2:
                return brk  # a paragraph break ends the segment here in any case
            index += 1
            if index - end > _MAX_GAP:
                return brk
        openers = 0
        while index < size and buf[index] in _OPENERS:
            index += 1
            openers += 1
            if openers > _MAX_OPENERS:
                return _CONTINUE
        if index >= size:
            return brk if end_of_text else _WAIT
        return brk if buf[index].isupper() else _CONTINUE


def split_sentences(text: str, *, max_chars: int = 300, language: str = "en") -> list[str]:
    """Split a whole text exactly as a `SentenceSegmenter` fed with it would."""
    seg = SentenceSegmenter(max_chars=max_chars, language=language)
    return seg.push(text) + seg.flush()
