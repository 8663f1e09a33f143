"""Does sentence punctuation end the segment? The rules for a run of terminators.

A run of terminators ("." "?!" "..." "。」") is judged by its last character, from a bounded
window around it: the word before it (an abbreviation, an initial, a number), the closing quotes
and brackets after it, and, when that is not enough, the next word ("etc. Then" ends, "etc. and"
continues; "the U.S. How" ends, "the U.S. Government" continues). See docs/segmentation.md for
the rules and `verdicts` for what the judgment returns.
"""

from __future__ import annotations

import re
from enum import Enum, auto

from .abbreviations import EXCLAMATION_WORDS, Abbreviations, abbreviations_for, spaced_forms
from .chars import CLOSERS, DOTS, OPENERS, QUESTION_EXCLAIM, RUN_CHARS, STRONG_TERMINATORS, is_cjk
from .nesting import Nesting
from .verdicts import CONTINUE, MAX_GAP, WAIT, Decision, break_at

__all__ = ["SentenceEnds"]

# Bounds of the look-ahead windows, so the wait for a verdict and the buffer stay bounded.
_MAX_CLOSERS = 4  # more closers than this after a terminator: not a sentence end
_MAX_OPENERS = 4  # more openers than this before the next word: not a sentence start
_MAX_WORD = 32  # a "word" before a period longer than this is an ordinary word
_MAX_STARTER = 12  # longest sentence-opener word looked up after "U.S." and the like
_MAX_SPACED_DOTS = 8  # ". . . ." runs are counted up to this many dots

# Dotted acronyms without their final period: "U.S", "U.S.A", "a.m".
_ACRONYM_RE = re.compile(r"(?:[^\W\d_]\.)+[^\W\d_]")


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


class SentenceEnds:
    """The sentence-end rules of one language. Holds no text: every call gets the buffer and
    the start of the current segment in it (`buf[start:]`), and looks no further back."""

    __slots__ = ("_lists", "_spaced", "_spaced_prefixes")

    def __init__(self, language: str) -> None:
        self._lists: Abbreviations = abbreviations_for(language)
        self._spaced, self._spaced_prefixes = spaced_forms(self._lists)

    def decide(self, buf: str, start: int, index: int, nesting: Nesting, end_of_text: bool) -> Decision:
        """The verdict on the terminator at `buf[index]`."""
        size = len(buf)
        after = index + 1
        if after < size and buf[after] in RUN_CHARS:
            return CONTINUE  # the run goes on; its last character decides
        if after >= size and not end_of_text:
            return WAIT

        run_start = index
        while run_start > start and buf[run_start - 1] in RUN_CHARS:
            run_start -= 1
        run = buf[run_start:after]
        if _is_elision(buf, run, run_start, after, start):
            return CONTINUE  # "[...]", "(…)": an omission mark inside a sentence
        spaced = _spaced_dots(buf, start, run, run_start, after, end_of_text)
        if isinstance(spaced, Decision):
            return spaced

        end = _skip_closers(buf, after, end_of_text)
        if isinstance(end, Decision):
            return end
        closers = buf[after:end]
        if nesting.protects_after_closers(closers, index):
            return CONTINUE  # inside brackets, quotes or a markup element
        if end >= size:
            return break_at(end)  # the end of the text
        follower = buf[end]
        if any(char in STRONG_TERMINATORS for char in run):
            return break_at(end)  # CJK and danda need no space after them
        if not follower.isspace():
            if is_cjk(follower) and any(char in QUESTION_EXCLAIM for char in run):
                return break_at(end)  # "你好!我" written with ASCII punctuation
            return CONTINUE  # "3.50", "example.com", "e.g.,", "Jr.'s"

        chain = self._dotted_chain(buf, start, run_start) if run == "." and not closers else ""
        if chain in self._spaced_prefixes:
            continued = self._continues_abbreviation(buf, end, chain, end_of_text)
            if continued is not None:
                return continued  # "z." of "z. B.": the last part decides
        rule = self._rule_for_run(buf, start, run, run_start, spaced, bool(closers), chain)
        if rule is None:
            return break_at(end)
        if isinstance(rule, Decision):
            return rule
        return self._decide_by_next_word(buf, end, rule, end_of_text)

    def _rule_for_run(
        self, buf: str, start: int, run: str, run_start: int, spaced: int, closed: bool, chain: str
    ) -> _Next | Decision | None:
        """How a run followed by whitespace is judged: None = it ends the sentence now,
        `CONTINUE` = it does not, or the rule that lets the next word decide."""
        plain_end = _Next.UNLESS_LOWER if closed else None
        if any(char in QUESTION_EXCLAIM for char in run):
            if run == "!" and _word_before(buf, start, run_start).lower() in EXCLAMATION_WORDS:
                return _Next.BEFORE_CAPITAL  # "Yahoo! in" continues, "Yahoo! It" ends
            return plain_end
        if spaced:
            return CONTINUE if spaced == 3 else plain_end  # ". . ." is inside a sentence
        dots = run.count(".") + 3 * run.count("…")
        if dots >= 4:
            return plain_end  # "...." and ". . . ." : an ellipsis plus a period
        if dots > 1:
            return _Next.UNLESS_LOWER  # "...", "…": ends unless the sentence goes on
        kind = self._classify_word(_word_before(buf, start, run_start), chain)
        if kind is _WordKind.ORDINARY:
            return plain_end
        if kind is _WordKind.NEVER_ENDS:
            return _Next.BEFORE_CAPITAL if closed else CONTINUE
        if kind is _WordKind.BEFORE_CAPITAL:
            return _Next.BEFORE_CAPITAL
        return _Next.BEFORE_STARTER

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

    def _dotted_chain(self, buf: str, start: int, run_start: int) -> str:
        """The short word before the period at `run_start`, joined with the spaced parts of an
        abbreviation before it: "u" for "u.", "z.b" for "z. B.", "i.d" for "i. d." (lower-case).
        "" when the word is not 1-3 letters."""
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

    def _continues_abbreviation(self, buf: str, end: int, chain: str, end_of_text: bool) -> Decision | None:
        """After the "z." of "z. B.": CONTINUE if the next word completes or extends a spaced
        abbreviation, WAIT while that is open, None when it does not."""
        size = len(buf)
        index = end
        while index < size and buf[index] in " \t" and index - end < 2:
            index += 1
        letters = index
        while letters < size and buf[letters].isalpha() and letters - index < 3:
            letters += 1
        if letters >= size:
            return None if end_of_text else WAIT
        if letters == index or buf[letters] != ".":
            return None
        longer = chain + "." + buf[index:letters].lower()
        return CONTINUE if longer in self._spaced or longer in self._spaced_prefixes else None

    def _decide_by_next_word(self, buf: str, end: int, rule: _Next, end_of_text: bool) -> Decision:
        """After an ambiguous end: the next word decides. `end` indexes the whitespace after it."""
        size = len(buf)
        brk = break_at(end)
        index, newlines = end, 0
        while index < size and buf[index].isspace():
            newlines += buf[index] == "\n"
            if newlines >= 2:
                return brk  # a paragraph break ends the segment here in any case
            index += 1
            if index - end > MAX_GAP:
                return brk
        openers = 0
        while index < size and buf[index] in OPENERS:
            index += 1
            openers += 1
            if openers > _MAX_OPENERS:
                return CONTINUE
        if index >= size:
            return brk if end_of_text else WAIT
        first = buf[index]
        if rule is _Next.UNLESS_LOWER:
            return CONTINUE if first.islower() or first.isdigit() else brk
        if not first.isupper():
            return CONTINUE
        if rule is _Next.BEFORE_CAPITAL:
            return brk
        word_end = index
        while word_end < size and buf[word_end].isalpha():
            word_end += 1
            if word_end - index > _MAX_STARTER:
                return CONTINUE
        if word_end >= size and not end_of_text:
            return WAIT
        return brk if buf[index:word_end] in self._lists.sentence_starters else CONTINUE


def _spaced_dots(buf: str, start: int, run: str, run_start: int, after: int, end_of_text: bool) -> int | Decision:
    """For a dot on its own (". . . ."): the number of dots in its spaced run, or a verdict
    while the run may go on (only its last dot is judged). 0 for any other run."""
    size = len(buf)
    if run != "." or (run_start > start and buf[run_start - 1] != " "):
        return 0
    if after < size and buf[after] == " ":
        if after + 1 >= size and not end_of_text:
            return WAIT
        if after + 1 < size and buf[after + 1] == ".":
            return CONTINUE
    count, index = 1, run_start
    while count < _MAX_SPACED_DOTS and index - 2 >= start and buf[index - 1] == " " and buf[index - 2] == ".":
        count += 1
        index -= 2
    return count


def _skip_closers(buf: str, after: int, end_of_text: bool) -> int | Decision:
    """The index after the closing quotes/brackets that follow a terminator, or a verdict
    when there are too many of them or the text may still add one."""
    size = len(buf)
    end = after
    while end < size and buf[end] in CLOSERS:
        end += 1
        if end - after > _MAX_CLOSERS:
            return CONTINUE
    if end >= size and not end_of_text:
        return WAIT
    return end


def _word_before(buf: str, start: int, index: int) -> str:
    """The text from the last whitespace up to `index`, without leading openers; "" when
    it is longer than `_MAX_WORD` (such a word is no abbreviation)."""
    low = max(start, index - _MAX_WORD)
    begin = index
    while begin > low and not buf[begin - 1].isspace():
        begin -= 1
    if begin == low and low > start and not buf[low - 1].isspace():
        return ""
    return buf[begin:index].lstrip(OPENERS)


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
