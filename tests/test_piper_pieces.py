"""Piper's sentences cut into inferences of bounded audio: where the cuts go, and how they sound.

The cutting is checked on phoneme lists as espeak makes them; the sound with the real model,
through the provider: a sentence under the cap is one inference as Piper makes it, a cut
sentence joins without a click and reads as speech.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from stream_server.audio.seams import SILENCE_THRESHOLD
from stream_server.providers.base import Urgency, VoiceOptions
from stream_server.providers.piper import DEFAULT_MAX_INFERENCE_S, PiperProvider, default_model_path
from stream_server.providers.piper_one_shot import SHARED_INFERENCE_S, OneShotSegment
from stream_server.providers.piper_pieces import (
    MIN_PHONEMES,
    PIECE_SEAMS,
    SentenceGain,
    expected_seconds,
    phonemes_per_piece,
    split_phonemes,
)

from .helpers import assert_speech_like, wait_for

VOICE = "en_US-joe-medium"
SEVEN_SECONDS = "When the morning train finally left the station, we watched the fields and the quiet villages drift slowly past our window."
RATE = 22050
LONG = (
    "The old lighthouse keeper climbed the winding stairs every evening, lit the great lamp above "
    "the rocks, and watched the fishing boats come home across the dark and restless water."
)


def phonemes(text: str) -> list[str]:
    return list(text)


def test_a_sentence_under_the_limit_is_one_piece_as_it_is() -> None:
    sentence = phonemes("həlˈoʊ ðˈɛɹ, hˌaʊ ɑːɹ jˈuː?")
    assert split_phonemes(sentence, len(sentence)) == [sentence]


def test_cuts_fall_on_word_boundaries_and_drop_the_space() -> None:
    sentence = phonemes("ðə kwˈɪk bɹˈaʊn fˈɑːks dʒˈʌmps ˌoʊvɚ ðə lˈeɪzi dˈɑːɡ.")
    pieces = split_phonemes(sentence, 20)
    assert len(pieces) > 1
    assert all(len(piece) <= 20 for piece in pieces)
    assert all(piece[0] != " " and piece[-1] != " " for piece in pieces)
    # Nothing lost, nothing added: the pieces are the words, in order.
    assert " ".join("".join(piece) for piece in pieces) == "".join(sentence)


def test_a_cut_after_a_clause_mark_is_preferred_to_the_last_word_boundary() -> None:
    sentence = phonemes("wˈʌn tˈuː θɹˈiː, fˈoːɹ fˈaɪv sˈɪks sˈɛvən")
    pieces = split_phonemes(sentence, 30)
    assert "".join(pieces[0]) == "wˈʌn tˈuː θɹˈiː,"


def test_a_word_longer_than_the_limit_is_cut_inside() -> None:
    word = phonemes("oʊmˈeɪɡə" * 10)  # "ΩΩΩΩΩΩΩΩΩΩ": one word for espeak
    pieces = split_phonemes(word, 16)
    assert [len(piece) for piece in pieces] == [16, 16, 16, 16, 16]
    assert sum(pieces, []) == word


def test_the_limit_follows_the_speed_and_never_falls_below_a_few_phonemes() -> None:
    at_normal_speed = phonemes_per_piece(4.0, length_scale=1.0)
    at_quarter_speed = phonemes_per_piece(4.0, length_scale=4.0)
    assert at_quarter_speed < at_normal_speed / 3
    for limit, scale in [(at_normal_speed, 1.0), (at_quarter_speed, 4.0)]:
        assert expected_seconds(2 * limit + 3, scale) <= 4.0
    assert phonemes_per_piece(1.0, length_scale=40.0) == MIN_PHONEMES


def test_pieces_of_one_sentence_share_one_gain_and_never_clip() -> None:
    gain = SentenceGain()
    first = gain.apply(np.array([0.0, 0.5, -0.25], dtype=np.float32))
    quieter = gain.apply(np.array([0.25], dtype=np.float32))
    louder = gain.apply(np.array([1.0, -0.5], dtype=np.float32))
    assert first.tolist() == [0.0, 1.0, -0.5]  # full scale, as Piper scales a sentence
    assert quieter.tolist() == [0.5]  # the same gain, not scaled up on its own
    assert louder.tolist() == [1.0, -0.5]
    assert gain.apply(np.zeros(3, dtype=np.float32)).tolist() == [0.0, 0.0, 0.0]


@pytest.fixture(scope="module")
def one_shot_provider():
    provider = PiperProvider([default_model_path()], chunked=False)
    yield provider
    asyncio.run(provider.aclose())


async def test_a_sentence_under_the_cap_is_one_inference_at_full_scale(one_shot_provider) -> None:
    await wait_for(lambda: one_shot_provider.stats()["jobs_in_flight"] == 0)
    before = one_shot_provider.stats()["jobs_started"]
    options = VoiceOptions(voice=VOICE, urgency=Urgency(urgent=True))
    chunks = [c async for c in one_shot_provider.synthesize("Shall we take a walk by the river after lunch?", options)]
    assert len(chunks) == 1 and one_shot_provider.stats()["jobs_started"] - before == 1
    assert np.max(np.abs(chunks[0].samples)) == pytest.approx(1.0)


@pytest.fixture(scope="module")
def small_pieces_provider():
    # One-shot: a chunk is a piece (the chunked path's pieces: tests/test_piper_chunked.py).
    provider = PiperProvider([default_model_path()], max_inference_s=1.5, chunked=False)
    yield provider
    asyncio.run(provider.aclose())


async def test_a_long_sentence_is_cut_and_joins_without_a_click(small_pieces_provider: PiperProvider) -> None:
    options = VoiceOptions(voice=VOICE, urgency=Urgency(urgent=True))
    chunks = [c async for c in small_pieces_provider.synthesize(LONG, options)]
    assert len(chunks) >= 4
    for chunk in chunks:
        # Each piece stays near its expected length (the estimate is set a little high).
        assert len(chunk.samples) < 1.5 * 1.5 * RATE
    fade = round(RATE * PIECE_SEAMS.fade_ms / 1000)
    # At a cut the sound is faded (its first step no larger than the seams' ramp) or silent.
    allowed = max(SILENCE_THRESHOLD, 1.0 / fade)
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert abs(before.samples[-1]) <= allowed and abs(after.samples[0]) <= allowed
        assert abs(after.samples[0] - before.samples[-1]) <= 2 * allowed
    joined = np.concatenate([c.samples for c in chunks])
    assert_speech_like(joined, RATE, LONG)
    # The pause at a cut is a pause between words, not a sentence's: at most the kept silences.
    longest_gap_ms = 1000 * _longest_silence(joined) / RATE
    assert longest_gap_ms < 400


def _longest_silence(samples: np.ndarray) -> int:
    quiet = np.abs(samples) <= SILENCE_THRESHOLD
    longest = run = 0
    for q in quiet:
        run = run + 1 if q else 0
        longest = max(longest, run)
    return longest


def test_a_sentence_stays_whole_alone_and_is_cut_while_others_wait() -> None:
    # About 7 s of speech: under the 10 s cap, over the 4 s a piece may take while others wait.
    provider = PiperProvider([default_model_path()], chunked=False)
    try:
        loaded = provider._voices[VOICE]

        def pieces_made(contended: bool) -> list[np.ndarray]:
            pieces = OneShotSegment(
                loaded.voice,
                SEVEN_SECONDS,
                1.0,
                DEFAULT_MAX_INFERENCE_S,
                loaded.phonemize_word,
                contended=lambda: contended,
            )
            made = []
            while not pieces.exhausted and (chunk := pieces.next()) is not None:
                made.append(chunk.samples)
            return made

        alone, shared = pieces_made(False), pieces_made(True)
    finally:
        asyncio.run(provider.aclose())
    assert len(alone) == 1 and 5 * RATE < len(alone[0]) < 10 * RATE
    assert len(shared) >= 2 and all(len(piece) < SHARED_INFERENCE_S * 1.5 * RATE for piece in shared)
    assert_speech_like(np.concatenate(shared), RATE, SEVEN_SECONDS)
