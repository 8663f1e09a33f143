"""Typed segments: how each segment ended and whether a blank line precedes it, whatever the
chunking (the streaming and property tests in test_segmenter.py compare typed segments too)."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_server.text import Ending, Segment, SentenceSegmenter, split_segments
from stream_server.text.chars import CLAUSE_STRENGTH, CLOSERS, RUN_CHARS

from .segmenting import feed
from .test_segmenter import options, vocabulary_texts

SENTENCE, CLAUSE, FORCED, LINE, FLUSH = (
    Ending.SENTENCE, Ending.CLAUSE, Ending.FORCED, Ending.LINE, Ending.FLUSH
)  # fmt: skip

# (text, options, [(segment, ending)]).
ENDINGS: list[tuple[str, dict[str, Any], list[tuple[str, Ending]]]] = [
    ("Really? Yes. Wow! Done", {}, [("Really?", SENTENCE), ("Yes.", SENTENCE), ("Wow!", SENTENCE), ("Done", FLUSH)]),
    # One set of terminators: the Arabic question mark, CJK stops, the danda, ellipses, quotes.
    ("Really؟ Yes.", {}, [("Really؟", SENTENCE), ("Yes.", SENTENCE)]),
    ("你好。我很好！", {}, [("你好。", SENTENCE), ("我很好！", SENTENCE)]),
    ("यह है। वह", {}, [("यह है।", SENTENCE), ("वह", FLUSH)]),
    ('She said "Stop." Then… Ok', {}, [('She said "Stop."', SENTENCE), ("Then…", SENTENCE), ("Ok", FLUSH)]),
    ("「好。」我", {}, [("「好。」", SENTENCE), ("我", FLUSH)]),
    # A flush of text that ends with a terminator is a sentence, even one the rules would not
    # have ended ("Dr." waits for more); one ending at a clause mark is a clause.
    ("Talk to Dr.", {}, [("Talk to Dr.", SENTENCE)]),
    ("Well, then,", {}, [("Well, then,", CLAUSE)]),
    # Clause cuts: the eager first segment, an overlong sentence cut at a clause mark.
    ("One two three, four five.", {"eager_first_segment": 3}, [("One two three,", CLAUSE), ("four five.", SENTENCE)]),
    ("one two, three four five six seven", {"max_chars": 20},
     [("one two,", CLAUSE), ("three four five six", FORCED), ("seven", FLUSH)]),
    ("好的，我们走吧", {"max_chars": 5}, [("好的，", CLAUSE), ("我们走吧", FLUSH)]),
    # Length cuts without punctuation: at a space, or inside a word too long for the limit.
    ("aaa bbb ccc ddd", {"max_chars": 10}, [("aaa bbb", FORCED), ("ccc ddd", FLUSH)]),
    ("x" * 25, {"max_chars": 10}, [("x" * 10, FORCED), ("x" * 10, FORCED), ("x" * 5, FLUSH)]),
    # The layout: a blank line, list items, headings, bullets, enumerators.
    ("A title\n\nText here.", {}, [("A title", LINE), ("Text here.", SENTENCE)]),
    ("Shopping:\n- milk\n- eggs\n", {}, [("Shopping:", CLAUSE), ("- milk", LINE), ("- eggs", LINE)]),
    ("# Heading\nBody", {}, [("# Heading", LINE), ("Body", FLUSH)]),
    ("milk • bread • eggs.", {}, [("milk", LINE), ("• bread", LINE), ("• eggs.", SENTENCE)]),
    ("1. one 2. two", {}, [("1. one", LINE), ("2. two", FLUSH)]),
]  # fmt: skip


@pytest.mark.parametrize(("text", "options", "expected"), ENDINGS)
def test_endings(text: str, options: dict[str, Any], expected: list[tuple[str, Ending]]) -> None:
    segments = split_segments(text, **options)
    assert [(s.text, s.ending) for s in segments] == expected
    assert feed(text, list(range(len(text))), **options) == segments


def test_a_flush_after_a_pending_boundary_keeps_the_ending_of_the_boundary() -> None:
    seg = SentenceSegmenter(eager_first_segment=3)
    assert seg.push("One two three,") == []
    assert seg.pending_boundary
    assert seg.flush() == [Segment("One two three,", CLAUSE)]
    assert seg.push("Hello world.") == []
    assert seg.flush() == [Segment("Hello world.", SENTENCE)]


# -- paragraph starts ---------------------------------------------------------------------------

PARAGRAPHS = "First one. Second one.\n\nThird, new paragraph.\n  \nFourth.\nFifth on a new line.\n\n\nSixth."
PARAGRAPH_STARTS = [False, False, True, True, False, True]


@pytest.mark.parametrize("seed", range(20))
def test_blank_lines_mark_paragraph_starts_under_any_chunking(seed: int) -> None:
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(len(PARAGRAPHS)), 30))
    segments = feed(PARAGRAPHS, cuts)
    assert [s.paragraph_start for s in segments] == PARAGRAPH_STARTS
    assert segments == split_segments(PARAGRAPHS)


def test_a_paragraph_start_is_known_when_its_segment_is_cut() -> None:
    seg = SentenceSegmenter()
    assert seg.push("One.\n\n") == [Segment("One.", SENTENCE)]  # cut by the line break
    assert seg.push("Two.") == []
    assert seg.push(" ") == [Segment("Two.", SENTENCE, paragraph_start=True)]


def test_a_blank_line_before_a_flush_still_opens_the_next_paragraph() -> None:
    # A boundary timeout flushes between paragraphs: the stream goes on, and so does the count.
    for first, second in [("One.\n\n", "Two."), ("One.\n", "\nTwo."), ("One.", "\n\nTwo.")]:
        seg = SentenceSegmenter()
        out = seg.push(first) + seg.flush() + seg.push(second) + seg.flush()
        assert [s.paragraph_start for s in out] == [False, True], (first, second)


def test_reset_forgets_the_blank_line() -> None:
    seg = SentenceSegmenter()
    seg.push("One.\n\n")
    seg.reset()
    assert seg.push("Two. ") == [Segment("Two.", SENTENCE)]


def test_a_text_that_starts_with_a_blank_line_opens_a_paragraph() -> None:
    assert split_segments("\n \nHi.") == [Segment("Hi.", SENTENCE, paragraph_start=True)]
    assert split_segments(" \nHi.") == [Segment("Hi.", SENTENCE)]


def _blank_line_before(text: str, segments: list[Segment]) -> list[bool]:
    """Independently: walk the text alongside the segments (each is a stripped substring, in
    order) and look for two line breaks in the whitespace before each."""
    flags, at = [], 0
    for segment in segments:
        found = text.index(segment.text, at)
        flags.append(text[at:found].count("\n") >= 2)
        at = found + len(segment.text)
    return flags


def _punctuation_ending(text: str) -> Ending | None:
    last = text.rstrip("".join(CLOSERS))[-1:]
    return SENTENCE if last in RUN_CHARS else CLAUSE if last in CLAUSE_STRENGTH else None


@settings(max_examples=250, deadline=None)
@given(text=vocabulary_texts, opts=options)
def test_typed_segments_match_their_definitions(text: str, opts: dict[str, object]) -> None:
    segments = split_segments(text, **opts)  # type: ignore[arg-type]
    assert [s.paragraph_start for s in segments] == _blank_line_before(text, segments)
    for index, segment in enumerate(segments):
        by_punctuation = _punctuation_ending(segment.text)
        if by_punctuation is not None:
            assert segment.ending is by_punctuation
        else:
            assert segment.ending is not SENTENCE and segment.ending is not CLAUSE
        if segment.ending is FLUSH:
            assert index == len(segments) - 1, "only the end of the text is a flush"
