"""When each written word of a segment is heard, from Piper's phonemes and their durations.

Sans-I/O. Piper phonemizes a segment with espeak into phonemes (one codepoint each; a space
between espeak's words), and its duration predictor gives each phoneme id a number of latent
frames (`hop` samples each). Two steps:

1. `align`, once per segment, before any audio: which spoken phonemes each written word became.
   The text's words do not map one-to-one onto espeak's: `42` is spoken `forty two`, `3.5` as
   three words, while `of the` or `a.m., e.g.` come out as one espeak word. So each written word
   is phonemized alone, and the concatenation of those (stress marks and punctuation left out) is
   aligned with the segment's phonemes by `difflib` (longest common runs, so a word that espeak
   says a little differently in context, `me` as `mˌiːʲ` not `mˈiː`, still lands on its place).
   A written word keeps its written form and the span of all it was spoken as. Where too little
   matches (a phonemizer other than espeak), the spoken phonemes are spread over the words in
   proportion to their characters instead.
2. `phoneme_times`, per inference: each phoneme's start and end from the per-id sample counts,
   as Piper's ids lay it out (BOS, PAD, then each phoneme's ids followed by PAD, then EOS); a
   phoneme owns its trailing PAD.

A word's characters are spread evenly over its span (`char_ms`): espeak does not say which
letters made which phoneme.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ..media import WordTiming

WORD_BREAK = " "
STRESS_MARKS = frozenset("ˈˌ")
MIN_MATCHED_SHARE = 0.5
"""Below this share of the written words' phonemes found in the spoken ones, spread instead."""
_TOKEN = re.compile(r"\S+")
_EDGE_MARKS = "\"'“”‘’«»()[]{}<>.,;:!?¡¿…—–-"
"""Marks around a word that are not part of it: `"Hello,"` is the word `Hello`."""


@dataclass(frozen=True, slots=True)
class WrittenWord:
    text: str
    """What is phonemized: the token without the marks around it."""
    char_start: int
    char_end: int
    shown: str
    """What a client is told was spoken: the whole token as written, punctuation attached
    (`"Hello,"`), as every provider's timings give it (docs/protocol.md#alignment)."""
    shown_start: int


@dataclass(frozen=True, slots=True)
class PhonemeSpan:
    """The spoken phonemes (indices into the segment's phonemes, all inferences in order) that a
    written word became: `first` to `last` inclusive."""

    first: int
    last: int


def phonemizer_text(text: str) -> str:
    """`text` as given to Piper's phonemizer: it reads [[ ... ]] as raw phonemes, and text from a
    client is text, never phonemes (the offsets of written words are the unescaped text's)."""
    return text.replace("[[", "[ [").replace("]]", "] ]")


def written_words(text: str) -> list[WrittenWord]:
    """The whitespace-separated words of `text`, without the marks around them (but the last
    period of a dotted abbreviation); a token of marks only (`—`) is no word."""
    words = []
    for match in _TOKEN.finditer(text):
        token = match.group()
        core = token.strip(_EDGE_MARKS)
        if not core:
            continue
        offset = token.index(core)
        if "." in core and core.rsplit(".", 1)[1].isalpha() and token[offset + len(core) :].startswith("."):
            core += "."  # an abbreviation's last period: `a.m.`, `U.S.A.`
        start = match.start() + offset
        words.append(WrittenWord(core, start, start + len(core), token, match.start()))
    return words


def _is_sound(phoneme: str) -> bool:
    """A phoneme that says something (not a stress mark, a space or punctuation)."""
    if phoneme in STRESS_MARKS or phoneme == WORD_BREAK:
        return False
    return not unicodedata.category(phoneme).startswith(("P", "Z", "S"))


def align(
    words: Sequence[WrittenWord],
    word_phonemes: Sequence[Sequence[str]],
    spoken: Sequence[str],
) -> list[PhonemeSpan | None]:
    """For each written word (its phonemes when said alone in `word_phonemes`), the span of
    `spoken` it became, or None for a word nothing was said for."""
    spoken_sounds = [i for i, p in enumerate(spoken) if _is_sound(p)]
    owner: list[int] = []
    written_sounds: list[str] = []
    for index, phonemes in enumerate(word_phonemes):
        for p in phonemes:
            if _is_sound(p):
                owner.append(index)
                written_sounds.append(p)
    if not spoken_sounds or not words:
        return [None] * len(words)
    # Written sound → the spoken sound it matches (None: no counterpart).
    matched: list[int | None] = [None] * len(written_sounds)
    matcher = difflib.SequenceMatcher(None, written_sounds, [spoken[i] for i in spoken_sounds], autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            for k in range(i2 - i1):
                matched[i1 + k] = j1 + k
        elif tag == "replace":
            for k in range(i2 - i1):
                matched[i1 + k] = j1 + (k * (j2 - j1)) // (i2 - i1)
    found = sum(1 for m in matched if m is not None)
    if found < MIN_MATCHED_SHARE * len(written_sounds):
        return _spread(words, spoken, spoken_sounds)
    spans: list[PhonemeSpan | None] = [None] * len(words)
    for sound, target in zip(owner, matched):
        if target is None:
            continue
        position = spoken_sounds[target]
        span = spans[sound]
        spans[sound] = PhonemeSpan(position, position) if span is None else PhonemeSpan(span.first, position)
    return [_with_stress(span, spoken) if span else None for span in spans]


def _with_stress(span: PhonemeSpan, spoken: Sequence[str]) -> PhonemeSpan:
    """A stress mark just before a word's first sound is part of the word."""
    first = span.first
    while first > 0 and spoken[first - 1] in STRESS_MARKS:
        first -= 1
    return PhonemeSpan(first, span.last)


def _spread(words: Sequence[WrittenWord], spoken: Sequence[str], sounds: Sequence[int]) -> list[PhonemeSpan | None]:
    """The spoken sounds shared out over the words in proportion to their characters."""
    total = sum(len(w.text) for w in words)
    spans: list[PhonemeSpan | None] = []
    before = 0
    for word in words:
        first = (before * len(sounds)) // total
        before += len(word.text)
        last = max(first, (before * len(sounds)) // total - 1)
        spans.append(_with_stress(PhonemeSpan(sounds[first], sounds[min(last, len(sounds) - 1)]), spoken))
    return spans


def phoneme_times(
    phonemes: Sequence[str],
    id_samples: Sequence[int],
    id_map: Mapping[str, Sequence[int]],
    sample_rate: int,
) -> list[tuple[float, float]]:
    """Each phoneme's (start, end) in ms from the start of its inference's audio. A phoneme
    missing from the id map (Piper skips it) gets no time: (t, t) where it would be."""
    per_ms = 1000.0 / sample_rate
    bos, pad = len(id_map["^"]), len(id_map["_"])
    expected = bos + pad + sum(len(id_map[p]) + pad for p in phonemes if p in id_map) + len(id_map["$"])
    if len(id_samples) != expected:
        raise ValueError(f"{len(id_samples)} durations for {expected} phoneme ids")
    cursor = sum(id_samples[: bos + pad])
    index = bos + pad
    times = []
    for phoneme in phonemes:
        count = len(id_map[phoneme]) + pad if phoneme in id_map else 0
        end = cursor + sum(id_samples[index : index + count])
        times.append((cursor * per_ms, end * per_ms))
        cursor, index = end, index + count
    return times


def timings(
    words: Sequence[WrittenWord],
    spans: Sequence[PhonemeSpan | None],
    times: Callable[[int], tuple[float, float] | None],
    first_phoneme: int,
    end_phoneme: int,
) -> list[WordTiming]:
    """The words whose first phoneme is in [first_phoneme, end_phoneme) (one inference's), timed by
    `times` (a phoneme's (start, end) in ms on the segment's audio; None for one not yet timed,
    which clamps a word's end to the last timed phoneme)."""
    result = []
    for word, span in zip(words, spans):
        if span is None or not first_phoneme <= span.first < end_phoneme:
            continue
        start = times(span.first)
        if start is None:
            continue  # its piece's durations did not fit its ids: untimed
        last = span.last
        end = times(last)
        while end is None:
            last -= 1
            end = times(last)
        result.append(_timing(word, start[0], max(start[0], end[1])))
    return result


def _timing(word: WrittenWord, start_ms: float, end_ms: float) -> WordTiming:
    shown = word.shown
    step = (end_ms - start_ms) / len(shown)
    return WordTiming(
        text=shown,
        char_start=word.shown_start,
        char_end=word.shown_start + len(shown),
        start_ms=start_ms,
        end_ms=end_ms,
        char_ms=tuple(start_ms + step * i for i in range(len(shown))),
    )


class SegmentWords:
    """A segment's written words, aligned with the phonemes of its pieces (inferences) at once,
    timed piece by piece as their durations become known."""

    def __init__(
        self,
        text: str,
        pieces: Sequence[Sequence[str]],
        phonemize_word: Callable[[str], list[str]],
    ) -> None:
        """`pieces`: each inference's phonemes, in order; `phonemize_word`: a word said alone."""
        self._words = written_words(text)
        self._bases = []
        spoken: list[str] = []
        for phonemes in pieces:
            self._bases.append(len(spoken))
            spoken.extend(phonemes)
        self._spans = align(self._words, [phonemize_word(w.text) for w in self._words], spoken)
        self._times: dict[int, tuple[float, float]] = {}
        """Bounded by the segment's phonemes; dropped with the segment."""

    def piece_timed(self, piece: int, times: Sequence[tuple[float, float]], *, start: int = 0) -> list[WordTiming]:
        """The words starting in the phonemes of piece `piece` from its `start`th on, whose times
        (ms on the segment's audio: `phoneme_times` plus where that audio starts) are `times`."""
        base = self._bases[piece] + start
        for offset, time in enumerate(times):
            self._times[base + offset] = time
        return timings(self._words, self._spans, self._times.get, base, base + len(times))
