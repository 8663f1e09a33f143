"""Piper's word timings, without inference: written words, their alignment with espeak's
phonemes, phoneme times from per-id durations (stream_server/providers/piper_words.py).

The phoneme lists are espeak's own output for these texts (en-us, as Piper phonemizes them).
"""

from __future__ import annotations

import pytest

from stream_server.providers.piper_words import (
    PhonemeSpan,
    SegmentWords,
    align,
    phoneme_times,
    phonemizer_text,
    written_words,
)

# Said alone, as espeak says each written word.
ALONE = {
    "Tell": "tˈɛl",
    "me": "mˈiː",
    "of": "ʌv",
    "the": "ðə",
    "day": "dˈeɪ",
    "I": "ˈaɪ",
    "have": "hˈæv",
    "42": "fˈɔːɹɾi tˈuː",
    "apples": "ˈæpəlz",
    "Dr": "dˈɑːktɚ",
    "Smith's": "smˈɪθz",
    "&": "ˈænd",
}


def said_alone(word: str) -> list[str]:
    return list(ALONE[word])


def spoken(text: str) -> list[str]:
    return list(text)


def words_of(spans: list[PhonemeSpan | None], phonemes: list[str]) -> list[str | None]:
    return [None if s is None else "".join(phonemes[s.first : s.last + 1]) for s in spans]


def test_written_words_keep_their_offsets_and_drop_the_marks_around_them() -> None:
    text = '"Hello," she said — twice at 3 a.m., in the U.S.A. and 3.5.'
    words = written_words(text)
    assert [w.text for w in words] == ["Hello", "she", "said", "twice", "at", "3", "a.m.", "in", "the", "U.S.A.", "and", "3.5"]
    assert all(text[w.char_start : w.char_end] == w.text for w in words)


def test_phonemizer_text_escapes_raw_phoneme_blocks() -> None:
    assert phonemizer_text("[[ hɛloʊ ]]") == "[ [ hɛloʊ ] ]"


def test_words_espeak_merges_keep_their_own_spans() -> None:
    # espeak says "of the" as one word, ʌvðə.
    text = "Tell me of the day"
    phonemes = spoken("tˈɛl mˌiːʲ ʌvðə dˈeɪ.")
    words = written_words(text)
    spans = align(words, [said_alone(w.text) for w in words], phonemes)
    assert words_of(spans, phonemes) == ["tˈɛl", "mˌiː", "ʌv", "ðə", "dˈeɪ"]


def test_a_number_keeps_its_written_form_with_the_span_of_all_it_became() -> None:
    text = "I have 42 apples & Dr. Smith's"
    phonemes = spoken("aɪ hæv fˈɔːɹɾi tˈuː ˈæpəlz ænd dˈɑːktɚ. smˈɪθz")
    words = written_words(text)
    spans = align(words, [said_alone(w.text) for w in words], phonemes)
    assert [w.text for w in words] == ["I", "have", "42", "apples", "&", "Dr", "Smith's"]
    assert words_of(spans, phonemes) == ["aɪ", "hæv", "fˈɔːɹɾi tˈuː", "ˈæpəlz", "ænd", "dˈɑːktɚ", "smˈɪθz"]


def test_a_word_nothing_was_said_for_has_no_span() -> None:
    words = written_words("Tell me")
    spans = align(words, [said_alone("Tell"), []], spoken("tˈɛl"))
    assert spans[1] is None and spans[0] is not None


def test_phonemes_unlike_the_words_are_spread_over_them_by_length() -> None:
    # A phonemizer whose words cannot be matched (another voice's phoneme set): proportional.
    words = written_words("ab abcd")
    phonemes = spoken("xyz uvw")
    spans = align(words, [list("ab"), list("abcd")], phonemes)
    assert spans[0] is not None and spans[1] is not None
    assert spans[0].first == 0 and spans[0].last < spans[1].first and spans[1].last == len(phonemes) - 1


ID_MAP = {"^": [1], "_": [0], "$": [2], " ": [3], "a": [14], "b": [15], ".": [10], "ˈ": [120]}


def test_phoneme_times_give_each_phoneme_its_ids_and_the_pad_after_them() -> None:
    # ids: ^ _ a _ b _ . _ $
    samples = [100, 50, 200, 20, 300, 30, 400, 40, 500]
    times = phoneme_times(list("ab."), samples, ID_MAP, 1000)
    assert times == [(150.0, 370.0), (370.0, 700.0), (700.0, 1140.0)]


def test_a_phoneme_missing_from_the_map_takes_no_time() -> None:
    samples = [100, 0, 200, 0, 0]  # ^ _ a _ $   ("?" is skipped by Piper)
    assert phoneme_times(list("a?"), samples, ID_MAP, 1000) == [(100.0, 300.0), (300.0, 300.0)]


def test_durations_that_do_not_fit_the_ids_are_refused() -> None:
    with pytest.raises(ValueError):
        phoneme_times(list("ab"), [1, 2, 3], ID_MAP, 1000)


def test_segment_words_are_timed_piece_by_piece_on_the_segment_audio() -> None:
    text = "ab ba. ab"
    pieces = [list("ˈab ba."), list("ab")]
    segment = SegmentWords(text, pieces, lambda w: list(w))
    first = segment.piece_timed(0, [(10.0 * i, 10.0 * (i + 1)) for i in range(len(pieces[0]))])
    assert [w.text for w in first] == ["ab", "ba."]  # as written, the punctuation attached
    # The stress mark before the first sound belongs to the word.
    assert first[0].start_ms == 0.0 and first[0].end_ms == 30.0
    assert first[1].start_ms == 40.0 and first[1].end_ms == 60.0
    second = segment.piece_timed(1, [(1000.0, 1010.0), (1010.0, 1020.0)])
    assert [(w.text, w.char_start, w.start_ms, w.end_ms) for w in second] == [("ab", 7, 1000.0, 1020.0)]
    for word in first + second:
        assert len(word.char_ms) == len(word.text)
        assert word.start_ms == word.char_ms[0] <= word.char_ms[-1] <= word.end_ms
