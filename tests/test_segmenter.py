"""Tests of the incremental sentence segmenter (pure code, no asyncio)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_server.text import SentenceSegmenter, split_segments, split_sentences
from stream_server.text.abbreviations import ENGLISH, abbreviations_for

from .segmenting import feed, texts


def squash(parts: list[str]) -> str:
    """The non-whitespace characters of `parts`, concatenated."""
    return "".join("".join(part.split()) for part in parts)


# -- sentence ends ------------------------------------------------------------------------------


def test_basic_terminators() -> None:
    assert split_sentences("The cat sat. Did it move? It did! Good") == [
        "The cat sat.",
        "Did it move?",
        "It did!",
        "Good",
    ]


def test_terminator_runs_and_ellipsis() -> None:
    # An ellipsis before a lower-case word continues the sentence (golden rule 47).
    assert split_sentences("Really?! Yes!!! Well... maybe… Fine. Wait... No.") == [
        "Really?!",
        "Yes!!!",
        "Well... maybe…",
        "Fine.",
        "Wait...",
        "No.",
    ]


def test_closing_quotes_and_brackets_stay_with_sentence() -> None:
    text = "She said \"Stop.\" He asked 'why?' (It was late.) [Ok.] “Go!” ‘Now.’ End"
    assert split_sentences(text) == [
        'She said "Stop."',
        "He asked 'why?'",
        "(It was late.)",
        "[Ok.]",
        "“Go!”",
        "‘Now.’",
        "End",
    ]


def test_terminator_without_following_space_is_not_an_end() -> None:
    assert split_sentences("Visit example.com today.It is fine") == [
        "Visit example.com today.It is fine"
    ]


def test_paragraph_break_ends_segment_single_newline_does_not() -> None:
    text = "First line\nstill first\n\nSecond part\r\n\r\nThird \n \n Fourth"
    assert split_sentences(text) == [
        "First line\nstill first",
        "Second part",
        "Third",
        "Fourth",
    ]


def test_cjk_terminators_need_no_space() -> None:
    assert split_sentences("你好。今天天气很好！你去吗？好") == [
        "你好。",
        "今天天气很好！",
        "你去吗？",
        "好",
    ]


def test_cjk_closing_bracket_stays() -> None:
    assert split_sentences("「こんにちは。」と彼は言った。") == ["「こんにちは。」", "と彼は言った。"]


# -- not sentence ends ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Dr. Watson met Mr. Holmes and Mrs. Hudson.",
        "Ms. Lee and Prof. Adams climbed Mt. Fuji from St. Anne's.",
        "Gen. Grant and Capt. Kirk argued.",
        "See Fig. 4 on p. 12 and No. 9.",
        "It was Alice vs. Bob in the final.",
        "It weighs approx. 3 kg today.",
        "Bring fruit, e.g. apples, i.e. red ones.",
        "Fruit etc. was sold.",
        "Acme Inc. was founded early.",
        "J. R. R. Tolkien wrote it.",
        "It costs $3.50 or 3.50 euros.",
        "Release v1.2.3 shipped at 10.30 sharp.",
        "He moved to the U.S. last year.",
    ],
)
def test_abbreviations_initials_and_numbers_do_not_split(text: str) -> None:
    assert split_sentences(text) == [text]


def test_titles_never_end_even_before_capital() -> None:
    assert split_sentences("Ask the Dr. He knows.") == ["Ask the Dr. He knows."]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("We sold fruit etc. Then we left.", ["We sold fruit etc.", "Then we left."]),
        ("I work at Acme Inc. It is big.", ["I work at Acme Inc.", "It is big."]),
        ("He runs Smith Ltd. and more.", ["He runs Smith Ltd. and more."]),
        ("Call Bob Jones Jr. He knows.", ["Call Bob Jones Jr.", "He knows."]),
        ("He lives in the U.S. He likes it.", ["He lives in the U.S.", "He likes it."]),
        ('Fruit etc. "Then" we left.', ["Fruit etc.", '"Then" we left.']),
    ],
)
def test_conditional_abbreviations_end_before_capital(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def test_unknown_language_falls_back_to_english() -> None:
    assert abbreviations_for("xx") is ENGLISH
    assert abbreviations_for("en-GB") is ENGLISH
    text = "Dr. Who arrived. Then he left."
    assert split_sentences(text, language="xx") == split_sentences(text)
    assert texts(SentenceSegmenter(language="zz").push(text)) == ["Dr. Who arrived."]


# -- zero delay, flush, reset ---------------------------------------------------------------------


def test_sentence_is_emitted_when_following_space_arrives() -> None:
    seg = SentenceSegmenter()
    assert texts(seg.push("Hello world.")) == []  # could still become "world.com"
    assert seg.pending_chars == len("Hello world.")
    assert texts(seg.push(" ")) == ["Hello world."]
    assert seg.pending_chars == 0
    assert texts(seg.push("How are")) == []
    assert texts(seg.push(" you?\n")) == ["How are you?"]


def test_one_character_pushes_emit_at_the_deciding_character() -> None:
    seg = SentenceSegmenter()
    text = "Wow! Ok? Yes."
    emitted_at = {}
    for i, char in enumerate(text + " "):
        for sentence in texts(seg.push(char)):
            emitted_at[sentence] = i
    assert emitted_at == {"Wow!": 4, "Ok?": 8, "Yes.": 13}


def test_conditional_abbreviation_waits_for_next_word_only() -> None:
    seg = SentenceSegmenter()
    assert texts(seg.push("I work at Acme Inc. ")) == []
    assert texts(seg.push("I")) == ["I work at Acme Inc."]
    seg.reset()
    assert texts(seg.push("Fruit etc. ")) == []
    assert texts(seg.push("a")) == []
    assert texts(seg.push("nd more. ")) == ["Fruit etc. and more."]


def test_cjk_is_emitted_on_the_next_character() -> None:
    seg = SentenceSegmenter()
    assert texts(seg.push("你好。")) == []  # a closing bracket could still follow
    assert texts(seg.push("我")) == ["你好。"]


def test_flush_returns_rest_and_resets() -> None:
    seg = SentenceSegmenter()
    assert texts(seg.push("Hello world.")) == []
    assert texts(seg.flush()) == ["Hello world."]
    assert seg.pending_chars == 0
    assert texts(seg.flush()) == []
    # Reusable after flush: nothing of the old text leaks in.
    assert texts(seg.push("Acme Inc.")) == []
    assert texts(seg.flush()) == ["Acme Inc."]
    assert texts(seg.push("New text. ")) == ["New text."]


def test_flush_of_whitespace_only_returns_nothing() -> None:
    seg = SentenceSegmenter()
    assert texts(seg.push("  \n\n \t ")) == []
    assert seg.pending_chars == 0
    assert texts(seg.flush()) == []
    assert split_sentences("") == []


def test_reset_drops_buffered_text() -> None:
    seg = SentenceSegmenter()
    assert texts(seg.push("Interrupted sente")) == []
    seg.reset()
    assert seg.pending_chars == 0
    assert texts(seg.push("Fresh start. ")) == ["Fresh start."]
    assert texts(seg.flush()) == []


# -- length bound ---------------------------------------------------------------------------------


def test_max_chars_prefers_clause_punctuation() -> None:
    text = "one two, three four five six seven"
    assert split_sentences(text, max_chars=20) == ["one two,", "three four five six", "seven"]


def test_max_chars_cuts_at_last_whitespace() -> None:
    assert split_sentences("aaa bbb ccc ddd", max_chars=10) == ["aaa bbb", "ccc ddd"]


def test_max_chars_hard_cut_without_whitespace() -> None:
    assert split_sentences("x" * 25, max_chars=10) == ["x" * 10, "x" * 10, "x" * 5]


def test_max_chars_exact_fit_and_trailing_space_do_not_cut() -> None:
    text = "ab, cd efgh"  # exactly 11 chars
    assert split_sentences(text, max_chars=11) == [text]
    assert split_sentences(text + "   ", max_chars=11) == [text]
    # The period makes it 12 chars. The comma is too close to the start (within the first
    # third of the window) to be worth a two-character segment: the last space wins.
    assert split_sentences(text + ".  Next", max_chars=11) == ["ab, cd", "efgh.", "Next"]
    assert split_sentences("abcd, efgh ijk.", max_chars=13) == ["abcd,", "efgh ijk."]


def test_max_chars_keeps_pending_text_bounded() -> None:
    seg = SentenceSegmenter(max_chars=50)
    out: list[str] = []
    for _ in range(500):
        out += texts(seg.push("word "))
        assert seg.pending_chars <= 51
    out += texts(seg.flush())
    assert all(len(s) <= 50 for s in out)
    assert squash(out) == "word" * 500


def test_invalid_max_chars() -> None:
    with pytest.raises(ValueError):
        SentenceSegmenter(max_chars=0)


def test_long_input_is_linear_enough() -> None:
    # A one-character-push rescan of the buffer would make this quadratic and slow.
    text = "Lorem ipsum dolor sit amet, consectetur etc. adipiscing elit. " * 400
    seg = SentenceSegmenter(max_chars=100_000)
    out: list[str] = []
    for char in text:
        out += texts(seg.push(char))
    out += texts(seg.flush())
    assert out == split_sentences(text, max_chars=100_000)
    assert len(out) == 400


# -- exactness properties -------------------------------------------------------------------------

VOCABULARY = [
    "Hello", "world", "the", "The", "It", "How", "a", "b", "I", "x", "J", "R", "U.S", "e.g", "i.e",
    "Dr", "Mr", "Mrs", "Prof", "St", "No", "Fig", "p", "vs", "approx", "Yahoo", "Government",
    "etc", "Inc", "Ltd", "Co", "Jr", "3.50", "$3.50", "v1.2.3", "10.30", "2024", "1,000",
    "你好", "世界", "こんにちは", "है", "Qué", "Sr", "т.е", "Всё", "z.B", "Oktober", "z. ", "B. ",
    "т. ", "д. ",
    ".", ".", ".", "!", "?", "?!", "...", "…", ",", ";", ":", "—", "。", "！", "？", "।", "॥",
    " . . . ", " . . . . ", '"', "'", "”", "’", ")", "]", "(", "[", "“", "„", "«", "»", "「", "」",
    "¿", "¡", "<", ">", "/>", "[sigh]", '<break time="1s"/>', '<say-as interpret-as="x">',
    "</say-as>", "<speak>", "</speak>", "•", "⁃", "- ", "# ", "1. ", "2. ", "2) ", "10. ", "a. ",
    "b. ", " ", " ", " ", " ", "  ", "\n", "\n\n", "\t", " \n ",
    "\nThe ", "\nand ", "\n**", "_", "and", "Ingredients", "\r\n", "\n  ", "eggs",
]  # fmt: skip

vocabulary_texts = st.lists(st.sampled_from(VOCABULARY), max_size=60).map("".join)
options = st.fixed_dictionaries(
    {"max_chars": st.sampled_from([1, 3, 8, 20, 60, 300])},
    optional={
        "max_bytes": st.sampled_from([4, 7, 16, 50]),
        "language": st.sampled_from(["en", "de", "fr-FR", "es", "it", "pt_BR", "ru", "xx"]),
        "eager_first_segment": st.integers(1, 4),
    },
)


def check_bounds(segments: list[str], opts: dict[str, object]) -> None:
    for segment in segments:
        assert segment and segment == segment.strip()
        assert len(segment) <= opts["max_chars"]  # type: ignore[operator]
        if "max_bytes" in opts:
            assert len(segment.encode("utf-8", "surrogatepass")) <= opts["max_bytes"]  # type: ignore[operator]


@settings(max_examples=250, deadline=None)
@given(text=vocabulary_texts, data=st.data(), opts=options)
def test_chunking_does_not_change_the_output(
    text: str, data: st.DataObject, opts: dict[str, object]
) -> None:
    # Texts, endings and paragraph starts alike.
    cuts = data.draw(st.lists(st.integers(0, len(text)), max_size=len(text)))
    expected = split_segments(text, **opts)  # type: ignore[arg-type]
    assert feed(text, cuts, **opts) == expected


@settings(max_examples=150, deadline=None)
@given(text=vocabulary_texts, opts=options)
def test_one_character_pushes_match_split_segments(text: str, opts: dict[str, object]) -> None:
    expected = split_segments(text, **opts)  # type: ignore[arg-type]
    assert feed(text, list(range(len(text))), **opts) == expected


@settings(max_examples=250, deadline=None)
@given(text=vocabulary_texts, opts=options)
def test_segments_preserve_text_and_respect_bounds(text: str, opts: dict[str, object]) -> None:
    segments = split_sentences(text, **opts)  # type: ignore[arg-type]
    assert squash(segments) == squash([text])
    check_bounds(segments, opts)


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=60), data=st.data(), opts=options)
def test_arbitrary_unicode_text(text: str, data: st.DataObject, opts: dict[str, object]) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(text)), max_size=len(text)))
    segments = split_segments(text, **opts)  # type: ignore[arg-type]
    assert feed(text, cuts, **opts) == segments
    assert squash(texts(segments)) == squash([text])
    check_bounds(texts(segments), opts)


@settings(max_examples=250, deadline=None)
@given(text=vocabulary_texts, data=st.data(), opts=options)
def test_pending_boundary_means_flush_cuts_exactly_there(
    text: str, data: st.DataObject, opts: dict[str, object]
) -> None:
    # Whenever pending_boundary is True, the text so far ends a segment: the same text followed
    # by a new sentence gives the same segments plus that sentence. (No text follows once
    # flush() is called, so flushing then loses nothing and cuts nothing in the middle.)
    cut = data.draw(st.integers(0, len(text)))
    prefix = text[:cut]
    seg = SentenceSegmenter(**opts)  # type: ignore[arg-type]
    emitted = seg.push(prefix)
    if seg.pending_boundary:
        rest = seg.flush()
        assert rest, "a pending boundary has text before it"
        assert split_segments(prefix, **opts) == emitted + rest  # type: ignore[arg-type]
        *before, last = split_segments(prefix + " A", **opts)  # type: ignore[arg-type]
        assert before == emitted + rest and last.text == "A"
