"""Streaming behaviour: when a segment is emitted, `pending_boundary`, reset/flush, and speed."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from stream_server.text import SentenceSegmenter, split_sentences

from .segmenting import texts

# -- a segment is emitted by the character that makes its end certain ---------------------------

# (text pushed one character at a time, options, {segment: index of the character whose push
# emits it}). Unambiguous ends need the character right after the terminator; ambiguous ones the
# next non-space character; a dotted acronym or initial before a capital (English) the next word.
EMISSION: list[tuple[str, dict[str, Any], dict[str, int]]] = [
    ("Wow! Ok? Yes. ", {}, {"Wow!": 4, "Ok?": 8, "Yes.": 13}),
    ("Hello world.\nNext", {}, {"Hello world.": 12}),
    ("I work at Acme Inc. It", {}, {"I work at Acme Inc.": 20}),
    ("We sold pens etc.  Then", {}, {"We sold pens etc.": 19}),
    ("你好。我", {}, {"你好。": 3}),
    ("「好。」我", {}, {"「好。」": 4}),
    ('She said "Stop." He', {}, {'She said "Stop."': 17}),
    ("Well... Maybe", {}, {"Well...": 8}),
    ("It ended . . . . A new", {}, {"It ended . . . .": 17}),
    ("I live in the U.S. How are", {}, {"I live in the U.S.": 22}),
    ("milk • bread", {}, {"milk": 5}),
    ("1. one 2. two", {}, {"1. one": 9}),
    ("Intro line\n- item", {}, {"Intro line": 12}),
    ("Ingredients\n  Two eggs", {}, {"Ingredients": 14}),  # the capital that starts the next line
    ("One two three, four", {"eager_first_segment": 3}, {"One two three,": 14}),
]


@pytest.mark.parametrize(("text", "options", "expected"), EMISSION)
def test_segment_is_emitted_by_the_deciding_character(
    text: str, options: dict[str, Any], expected: dict[str, int]
) -> None:
    seg = SentenceSegmenter(**options)
    emitted_at: dict[str, int] = {}
    for index, char in enumerate(text):
        for segment in texts(seg.push(char)):
            emitted_at[segment] = index
    assert emitted_at == expected


def test_whole_push_emits_every_decided_sentence_at_once() -> None:
    seg = SentenceSegmenter()
    assert texts(seg.push("One. Two! Three? Four")) == ["One.", "Two!", "Three?"]
    assert seg.pending_chars == len("Four")
    assert texts(seg.flush()) == ["Four"]


# -- pending_boundary -------------------------------------------------------------------------------

PENDING: list[tuple[str, dict[str, Any], bool]] = [
    ("Hello world.", {}, True),
    ("Hello world!", {}, True),
    ('She said "Stop."', {}, True),
    ("Acme Inc.", {}, True),
    ("Acme Inc. ", {}, True),
    ("the U.S. ", {}, True),
    ("你好。", {}, True),
    ("Yes...", {}, True),
    ("It ended . . . .", {}, True),
    ("One two three,", {"eager_first_segment": 3}, True),
    ("Hello wor", {}, False),
    ("Hello world", {}, False),
    ("Talk to Dr.", {}, False),
    ("Talk to Dr. ", {}, False),
    ("the U.S. Gov", {}, False),
    ("Hello\n", {}, False),
    ("1.", {}, False),
    ("He left (it was late.", {}, False),
    ("Call <say-as", {}, False),
    ("One two three,", {}, False),
    ("Hello world. ", {}, False),  # already emitted: nothing is pending
    ("", {}, False),
]


@pytest.mark.parametrize(("text", "options", "expected"), PENDING)
def test_pending_boundary(text: str, options: dict[str, Any], expected: bool) -> None:
    seg = SentenceSegmenter(**options)
    for char in text:
        seg.push(char)
    assert seg.pending_boundary is expected
    # The property is stable: asking again (cached) or after an empty push gives the same.
    seg.push("")
    assert seg.pending_boundary is expected


def test_flush_on_pending_boundary_cuts_exactly_there() -> None:
    seg = SentenceSegmenter()
    assert texts(seg.push("Hello world.")) == []
    assert seg.pending_boundary
    assert texts(seg.flush()) == ["Hello world."]
    assert not seg.pending_boundary
    assert texts(seg.push(" Next one. ")) == ["Next one."]


def test_pending_boundary_clears_when_the_text_goes_on() -> None:
    seg = SentenceSegmenter()
    seg.push("Acme Inc.")
    assert seg.pending_boundary
    assert texts(seg.push(" and friends")) == []
    assert not seg.pending_boundary


# -- reset, flush and eager_first_segment -----------------------------------------------------------


def test_eager_applies_to_the_first_segment_only_and_again_after_reset() -> None:
    seg = SentenceSegmenter(eager_first_segment=2)
    assert texts(seg.push("Well then, we go, ")) == ["Well then,"]
    assert texts(seg.push("and then, we stop. Again, and")) == ["we go, and then, we stop."]
    seg.reset()
    assert texts(seg.push("Well then, we go, ")) == ["Well then,"]


def test_flush_does_not_rearm_eager() -> None:
    seg = SentenceSegmenter(eager_first_segment=2)
    assert texts(seg.push("Well then, ")) == ["Well then,"]
    assert texts(seg.flush()) == []
    assert texts(seg.push("One two, three. ")) == ["One two, three."]


def test_eager_stays_armed_until_something_is_emitted() -> None:
    seg = SentenceSegmenter(eager_first_segment=3)
    assert texts(seg.push("One, two, three, four, five")) == ["One, two, three,"]


def test_reset_drops_buffered_text() -> None:
    seg = SentenceSegmenter()
    assert texts(seg.push("Interrupted sente")) == []
    seg.reset()
    assert seg.pending_chars == 0
    assert texts(seg.push("Fresh start. ")) == ["Fresh start."]


@pytest.mark.parametrize(
    "options", [{"max_chars": 0}, {"max_bytes": 3}, {"eager_first_segment": 0}]
)
def test_invalid_options(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SentenceSegmenter(**options)


def test_max_bytes_bounds_every_segment() -> None:
    text = "Grüße aus Köln, schöne Stadt; 東京 und 😀 dazu " * 20
    segments = split_sentences(text, max_bytes=40, language="de")
    assert all(len(s.encode()) <= 40 for s in segments)
    assert "".join("".join(s.split()) for s in segments) == "".join(text.split())


# -- speed: a push costs O(new text) ----------------------------------------------------------------


def _stream_time(text: str, options: dict[str, Any], repeat: int) -> float:
    """Best of `repeat`: push `text` one character at a time, then flush.

    In this thread's CPU time, not wall time: other processes on a busy machine do not count."""
    best = float("inf")
    for _ in range(repeat):
        seg = SentenceSegmenter(**options)
        push = seg.push
        started = time.thread_time()
        for char in text:
            push(char)
        seg.flush()
        best = min(best, time.thread_time() - started)
    return best


def _growth(make: Callable[[int], str], small: int, options: dict[str, Any], repeat: int) -> float:
    """Time for 4x the text over time for the text. Linear: about 4; quadratic: about 16.
    Measured in one run, so the machine's speed cancels out."""
    return _stream_time(make(4 * small), options, repeat) / _stream_time(make(small), options, repeat)


NO_TERMINATOR: dict[str, Callable[[int], str]] = {
    "words": lambda n: ("lorem ipsum dolor sit amet " * (n // 20))[:n],
    "one word": lambda n: "x" * n,
    "clauses": lambda n: ("alpha, beta; gamma: delta " * (n // 20))[:n],
    "open brackets": lambda n: ("(a [b “c " * (n // 8))[:n],
    "tag-like": lambda n: ('<a b="c" ' * (n // 8))[:n],
    "dots in words": lambda n: ("a.b.c " * (n // 6))[:n],
}


def test_200_kb_without_terminator_in_1_char_pushes_is_linear() -> None:
    # The buffer grows to 200 KB (no limit): a push that rescanned or copied it would make
    # this quadratic.
    growth = _growth(NO_TERMINATOR["words"], 50_000, {"max_chars": 10**7}, repeat=3)
    assert growth < 8, f"200 KB took {growth:.1f}x the time of 50 KB"


@pytest.mark.parametrize("kind", list(NO_TERMINATOR))
@pytest.mark.parametrize(
    "options",
    [{}, {"max_chars": 10**7}, {"max_chars": 10**7, "max_bytes": 10**8, "eager_first_segment": 500}],
    ids=["default", "unbounded", "bytes-eager"],
)
def test_stream_without_terminator_is_linear(kind: str, options: dict[str, Any]) -> None:
    growth = _growth(NO_TERMINATOR[kind], 15_000, options, repeat=2)
    assert growth < 8, f"60 KB took {growth:.1f}x the time of 15 KB"
