"""Seams between segments: no clicks, provider silence trimmed, natural pauses by boundary kind."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence

import numpy as np
import pytest
from websockets.asyncio.client import connect

from stream_server.audio.seams import SILENCE_THRESHOLD, SeamSettings, SegmentShaper
from stream_server.providers.base import PcmChunk, VoiceInfo, VoiceOptions

from .conftest import run_server, tone_settings
from .helpers import pcm_samples, receive, receive_all, send

RATE = 24000
FREQ = 300.0
AMPLITUDE = 0.8


class ShapedProvider:
    """A provider whose audio starts and stops mid-swing, wrapped in chosen lengths of silence."""

    name = "shaped"
    max_chars = None
    max_bytes = None

    def __init__(self, lead_ms: int = 0, sound_ms: int = 300, trail_ms: int = 0) -> None:
        self.lead, self.sound, self.trail = (RATE * ms // 1000 for ms in (lead_ms, sound_ms, trail_ms))

    @property
    def voices(self) -> Sequence[VoiceInfo]:
        return (VoiceInfo("v", RATE, "en"),)

    async def synthesize(self, text: str, options: VoiceOptions) -> AsyncGenerator[PcmChunk, None]:
        # Phase 90°: the first sample is at full amplitude, an instant jump from silence.
        t = np.arange(self.sound) / RATE
        sound = (AMPLITUDE * np.cos(2 * np.pi * FREQ * t)).astype(np.float32)
        audio = np.concatenate((np.zeros(self.lead, np.float32), sound, np.zeros(self.trail, np.float32)))
        for i in range(0, len(audio), 1000):  # odd chunk sizes, like a network stream
            yield PcmChunk(audio[i : i + 1000], RATE)

    async def aclose(self) -> None:
        return None

    def stats(self) -> dict[str, int]:
        return {}


def largest_step(samples: np.ndarray) -> float:
    return float(np.abs(np.diff(samples)).max())


async def stream(provider: ShapedProvider, text: str, **settings) -> tuple[np.ndarray, list[dict]]:
    config = tone_settings(providers=("tone",), provider="tone", **settings)
    async with run_server(config, {"tone": provider}) as server:
        async with connect(f"{server.ws_url}?sample_rate={RATE}") as ws:
            await receive(ws)
            await send(ws, type="text", text=text)
            await send(ws, type="end")
            transcript = await receive_all(ws)
    return pcm_samples(transcript.frames()), transcript.messages("segment_end")


async def test_no_click_where_a_provider_starts_or_stops_abruptly() -> None:
    samples, ends = await stream(ShapedProvider(), "One. Two. Three.", sentence_pause_ms=100)
    assert len(ends) == 3
    # The signal's own steepest step, and what the joins would jump without fades (0.8).
    own_step = AMPLITUDE * 2 * np.sin(np.pi * FREQ / RATE)
    assert largest_step(samples) <= 1.2 * own_step


def test_without_fades_the_same_audio_would_click() -> None:
    """The measure above can fail: unshaped, the joins jump by the full amplitude."""
    t = np.arange(RATE * 3 // 10) / RATE
    sound = AMPLITUDE * np.cos(2 * np.pi * FREQ * t)
    joined = np.concatenate((sound, np.zeros(100), sound))
    assert largest_step(joined) > 5 * AMPLITUDE * 2 * np.sin(np.pi * FREQ / RATE)


async def test_provider_silence_is_trimmed_to_the_configured_maximum() -> None:
    provider = ShapedProvider(lead_ms=400, sound_ms=300, trail_ms=600)
    samples, ends = await stream(
        provider, "Just one.", max_leading_silence_ms=30, max_trailing_silence_ms=50, sentence_pause_ms=0
    )
    loud = np.flatnonzero(np.abs(samples) > SILENCE_THRESHOLD)
    assert loud[0] / RATE * 1000 == pytest.approx(30, abs=1)
    trailing_ms = (len(samples) - loud[-1] - 1) / RATE * 1000
    assert 45 <= trailing_ms <= 50 + 2  # 50 ms kept, plus the resampler flush
    assert ends[0]["audio_ms"] == pytest.approx(30 + 300 + 50, abs=3)


async def test_pauses_depend_on_how_a_segment_ended() -> None:
    provider = ShapedProvider(sound_ms=200)
    settings = {"sentence_pause_ms": 300, "clause_pause_ms": 60, "paragraph_pause_ms": 700}
    text = "A whole sentence. Then a question?\n\nA new paragraph. And"
    samples, ends = await stream(provider, text, **settings)
    # Sentence ends get the sentence pause, the flushed piece without one the clause pause; a
    # blank line makes the pause before the next segment a paragraph's (700 = 300 + 400).
    assert [round(e["audio_ms"] - 200) for e in ends] == pytest.approx([300, 300, 400 + 300, 60], abs=3)
    # The silences between the sounds, measured on 1 ms blocks (a sine crosses zero often).
    block = RATE // 1000
    loud = np.abs(samples[: len(samples) // block * block]).reshape(-1, block).max(axis=1) > 0.01
    falls = np.flatnonzero(loud[:-1] & ~loud[1:])
    rises = np.flatnonzero(~loud[:-1] & loud[1:])
    gaps_ms = [int(rise - fall) for fall, rise in zip(falls, rises[rises > falls[0]])]
    assert gaps_ms == pytest.approx([300, 700, 300], abs=4)


def test_shaper_holds_back_only_a_bounded_tail() -> None:
    shaper = SegmentShaper(SeamSettings(), RATE)
    out = shaper.push(np.full(RATE, 0.5, np.float32))
    out2 = shaper.push(np.zeros(RATE * 5, np.float32))  # 5 s of silence mid-segment
    held = RATE + RATE * 5 - len(out) - len(out2)
    assert held <= RATE * 1.01  # at most about a second of silence is ever held back
    rest = shaper.end()
    assert len(rest) <= held
