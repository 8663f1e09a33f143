"""Word timestamps with the local Piper voice, end to end over a real WebSocket.

The timings come from the Piper provider (issue 17, part 1); until it attaches them these tests
skip, saying so, and run unchanged once it does: everything past the provider is the same code the
tone tests check exactly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import connect

from .conftest import RunningServer, run_server, tone_settings
from .helpers import Transcript, pcm_samples, receive, receive_all, receive_until, send

TEXT = "The weather is lovely today. Shall we take a walk by the river after lunch?"
NO_TIMINGS = "the Piper provider attaches no word timings yet (issue 17 part 1, branch i17-piper)"


@pytest.fixture
async def piper_server(piper_provider, tone_provider) -> AsyncIterator[RunningServer]:
    settings = tone_settings(providers=("piper", "tone"), provider="piper", sentence_pause_ms=200)
    async with run_server(settings, {"piper": piper_provider, "tone": tone_provider}) as server:
        yield server


def words_of(transcript: Transcript) -> list[dict[str, Any]]:
    words = [w for m in transcript.messages("alignment") for w in m["words"]]
    if not words:
        pytest.skip(NO_TIMINGS)
    return words


async def test_piper_words_cover_the_text_in_order_within_the_audio(piper_server: RunningServer) -> None:
    async with connect(f"{piper_server.ws_url}?timestamps=char&format=pcm&sample_rate=22050") as ws:
        ready = await receive(ws)
        assert isinstance(ready, dict) and ready["provider"] == "piper"
        await send(ws, type="text", text=TEXT)
        await send(ws, type="end")
        transcript = await receive_all(ws)
    assert not [m for m in transcript.messages("warning") if m["code"] == "timestamps_unavailable"]
    words = words_of(transcript)
    assert [w["text"] for w in words] == TEXT.split()
    for word in words:
        assert TEXT[word["char_start"] : word["char_end"]] == word["text"]
        assert word["start_ms"] <= word["end_ms"]
    starts = [w["start_ms"] for w in words]
    assert starts == sorted(starts)
    samples = pcm_samples(transcript.frames())
    total_ms = 1000.0 * len(samples) / 22050
    assert words[-1]["end_ms"] <= total_ms
    # Each word starts on speech: some sound within its first 150 ms.
    for word in words:
        first = int(word["start_ms"] * 22.05)
        assert np.abs(samples[first : first + int(150 * 22.05)]).max() > 0.01, word
    for message in transcript.messages("alignment"):
        chars = message["chars"]
        assert "".join(c["char"] for c in chars) == "".join(w["text"] for w in message["words"])


async def test_piper_cancel_names_the_word_heard(piper_server: RunningServer) -> None:
    async with connect(f"{piper_server.ws_url}?timestamps=word&max_lead_ms=500") as ws:
        await receive(ws)
        await send(ws, type="text", text=TEXT + " " + TEXT)
        transcript = Transcript()
        while sum(len(f) for f in transcript.frames()) < 2 * 22 * 1200:  # 1.2 s of audio
            transcript.items.append(await receive(ws))
        await send(ws, type="cancel", played_ms=700.0)
        await receive_until(ws, "cancelled", transcript)
    words = words_of(transcript)
    (cancelled,) = transcript.messages("cancelled")
    heard = [w for w in words if w["start_ms"] < 700.0][-1]
    assert cancelled["last_heard"]["text"] == heard["text"]
    assert cancelled["last_heard"]["char_end"] == heard["char_end"]
