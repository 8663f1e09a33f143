"""The Piper voice decoded in windows: the graph's cut, the windows, the stitched audio against a
one-shot decode of the same latent, and what the provider yields (audio and word timings).

The one-shot reference is the decoder run on the whole latent (raw output, before any gain): the
front part draws noise, so two runs of the whole model never make the same latent.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator

import numpy as np
import onnx
import pytest

from stream_server.audio.seams import SILENCE_THRESHOLD
from stream_server.providers.base import VoiceOptions
from stream_server.providers.piper import PiperProvider, default_model_path, load_voice
from stream_server.providers.piper_split import SplitError, split
from stream_server.providers.piper_windows import FIRST_WINDOW_FRAMES, MARGIN_FRAMES, WINDOW_FRAMES, plan_windows
from stream_server.providers.piper_words import written_words

from .helpers import assert_speech_like

VOICE = "en_US-joe-medium"
CORPUS = (
    "Hi.",
    "The quick brown fox jumps over the lazy dog near the river bank today.",
    "I paid $42.50 for 3 tickets on May 5th, 2024, at 10:30 a.m.",
    "The old lighthouse keeper climbed the winding stairs every evening, lit the great lamp above "
    "the rocks, and watched the fishing boats come home across the dark and restless water.",
    "中文很好。",
)
SEVERAL = "First things first. Then, the second sentence! And is this the third one?"
MIN_SNR_DB = 60.0


def test_windows_cover_the_frames_once_first_small_then_large() -> None:
    for frames in (1, 10, FIRST_WINDOW_FRAMES, FIRST_WINDOW_FRAMES + 1, 100, 345, 1000, 5000):
        windows = plan_windows(frames)
        assert windows[0].start == 0 and windows[-1].end == frames
        assert all(a.end == b.start for a, b in zip(windows, windows[1:]))
        assert windows[0].end - windows[0].start <= FIRST_WINDOW_FRAMES
        assert all(w.end - w.start < 2 * WINDOW_FRAMES for w in windows)
        for w in windows:
            assert w.context_start == max(0, w.start - MARGIN_FRAMES)
            assert w.context_end == min(frames, w.end + MARGIN_FRAMES)
    # Large windows after the first, the last one taking a short remainder.
    sizes = [w.end - w.start for w in plan_windows(FIRST_WINDOW_FRAMES + 2 * WINDOW_FRAMES + 10)]
    assert sizes == [FIRST_WINDOW_FRAMES, WINDOW_FRAMES, WINDOW_FRAMES + 10]


def test_the_kept_samples_of_a_window_are_its_own_frames() -> None:
    window = plan_windows(500)[1]
    kept = window.kept(256)
    assert kept.start == (window.start - window.context_start) * 256
    assert kept.stop - kept.start == (window.end - window.start) * 256


@pytest.fixture(scope="module")
def loaded():  # type: ignore[no-untyped-def]
    return load_voice(default_model_path(), 0)


def test_the_shipped_voice_is_cut_and_its_hop_measured(loaded) -> None:  # type: ignore[no-untyped-def]
    assert loaded.info.decoding == "chunked"
    # Measured on the decoder; Piper's config says the same for this voice.
    assert loaded.chunked.hop == loaded.voice.config.hop_length == 256
    assert 0.05 < loaded.chunked.reference_peak <= 1.0


def test_a_graph_without_a_decoder_is_not_cut() -> None:
    model = onnx.load(str(default_model_path()))
    for node in model.graph.node:
        node.name = node.name.replace("/dec/", "/decoder/")
    with pytest.raises(SplitError):
        split(model)


def _stitched(loaded, latent: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:  # type: ignore[no-untyped-def]
    """(first sample, audio) of each window, as the chunked segment decodes them."""
    hop = loaded.chunked.hop
    for window in plan_windows(latent.shape[2]):
        context = np.ascontiguousarray(latent[:, :, window.context_start : window.context_end])
        yield window.start * hop, loaded.chunked.decode(context)[window.kept(hop)]


def test_stitched_windows_match_a_one_shot_decode(loaded) -> None:  # type: ignore[no-untyped-def]
    voice, model = loaded.voice, loaded.chunked
    signal = noise = 0.0
    worst = 0.0
    for text in CORPUS:
        for phonemes in voice.phonemize(text):
            latent, _ = model.run_front(voice, voice.phonemes_to_ids(phonemes), 1.0)
            whole = model.decode(latent).astype(np.float64)
            pieces = list(_stitched(loaded, latent))
            stitched = np.concatenate([audio for _, audio in pieces]).astype(np.float64)
            assert len(stitched) == len(whole) == latent.shape[2] * model.hop
            difference = stitched - whole
            signal += float(np.sum(whole**2))
            noise += float(np.sum(difference**2))
            worst = max(worst, float(np.max(np.abs(difference))))
            # No seam: around each join the stitched audio is as close to the whole as anywhere.
            for join, _ in pieces[1:]:
                around = slice(max(0, join - 64), join + 64)
                assert np.max(np.abs(difference[around])) < 1e-4
    snr_db = 10 * math.log10(signal / max(noise, 1e-30))
    print(f"stitched vs one-shot: max abs difference {worst:.2e}, SNR {snr_db:.1f} dB")
    assert snr_db >= MIN_SNR_DB
    assert worst < 1e-4


async def _synthesize(provider: PiperProvider, text: str, speed: float = 1.0):  # type: ignore[no-untyped-def]
    return [chunk async for chunk in provider.synthesize(text, VoiceOptions(voice=VOICE, speed=speed))]


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "one-shot"])
def test_the_provider_streams_audio_with_word_timings(chunked: bool) -> None:
    provider = PiperProvider([default_model_path()], chunked=chunked)
    try:
        chunks = asyncio.run(_synthesize(provider, SEVERAL))
    finally:
        asyncio.run(provider.aclose())
    rate = chunks[0].sample_rate
    audio = np.concatenate([c.samples for c in chunks])
    assert_speech_like(audio, rate, SEVERAL)
    if chunked:
        # The first window leaves alone: a few hundred ms, not the first sentence.
        assert len(chunks[0].samples) <= FIRST_WINDOW_FRAMES * 256
        assert len(chunks) > 3
    # Each word once, in order, on a chunk no later than the one holding its first sample.
    expected = written_words(SEVERAL)
    timed = [(index, word) for index, chunk in enumerate(chunks) for word in chunk.words]
    assert [w.text for _, w in timed] == [w.shown for w in expected]
    assert [w.char_start for _, w in timed] == [w.shown_start for w in expected]
    starts = np.cumsum([0] + [len(c.samples) for c in chunks]) * 1000.0 / rate
    previous_end = 0.0
    for index, word in timed:
        assert starts[index] <= word.start_ms, f"{word.text} rides a chunk after its first sample"
        assert previous_end - 1.0 <= word.start_ms <= word.end_ms <= starts[-1]
        assert word.end_ms - word.start_ms > 30.0
        previous_end = word.end_ms
        assert list(word.char_ms) == sorted(word.char_ms) and len(word.char_ms) == len(word.text)
    # A word starts where there is sound: its first 100 ms are not silence.
    for _, word in timed:
        first = round(word.start_ms * rate / 1000)
        assert np.max(np.abs(audio[first : first + rate // 10])) > 0.05, word.text


def test_a_sentence_cut_into_pieces_streams_in_windows_with_its_words_in_order() -> None:
    provider = PiperProvider([default_model_path()], chunked=True, max_inference_s=1.5)
    try:
        chunks = asyncio.run(_synthesize(provider, CORPUS[3]))
    finally:
        asyncio.run(provider.aclose())
    rate = chunks[0].sample_rate
    audio = np.concatenate([c.samples for c in chunks])
    assert_speech_like(audio, rate, CORPUS[3])
    words = [w for c in chunks for w in c.words]
    assert [w.text for w in words] == [w.shown for w in written_words(CORPUS[3])]
    assert all(a.start_ms <= b.start_ms for a, b in zip(words, words[1:]))
    assert words[-1].end_ms <= 1000 * len(audio) / rate
    # The cuts' silences are trimmed to a pause between words, as on the one-shot path.
    quiet = np.abs(audio) <= SILENCE_THRESHOLD
    longest = run = 0
    for q in quiet:
        run = run + 1 if q else 0
        longest = max(longest, run)
    assert 1000 * longest / rate < 400
