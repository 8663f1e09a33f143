"""Segmentation options of a stream, end to end: boundary timeout, language, eager first segment,
and a provider's own text limit."""

from __future__ import annotations

import time

from websockets.asyncio.client import connect

from stream_server.providers.tone import ToneProvider

from .conftest import RunningServer, run_server, tone_settings
from .helpers import receive, receive_all, receive_until, send, wait_for


async def test_a_pending_sentence_end_is_taken_after_a_pause_in_the_text(tone_server: RunningServer) -> None:
    async with connect(f"{tone_server.ws_url}?boundary_timeout_ms=20") as ws:
        assert (await receive(ws))["boundary_timeout_ms"] == 20
        # "world." might still become "world.com": only the pause in the text decides it.
        await send(ws, type="text", text="Hello world.")
        transcript = await receive_until(ws, "segment_end")
        assert [s["text"] for s in transcript.messages("segment")] == ["Hello world."]


async def test_text_without_a_possible_sentence_end_is_not_flushed_by_a_pause(tone_server: RunningServer) -> None:
    async with connect(f"{tone_server.ws_url}?boundary_timeout_ms=20") as ws:
        await receive(ws)
        await send(ws, type="text", text="Hello wor")
        session = next(iter(tone_server.state.streams))
        await wait_for(lambda: session.stats.text_chars == 9)
        session.core.tick(time.monotonic() + 1.0)  # what the deadline does after the pause
        await send(ws, type="text", text="ld. And more")
        await send(ws, type="end")
        transcript = await receive_all(ws)
    assert [s["text"] for s in transcript.messages("segment")] == ["Hello world.", "And more"]


async def test_the_stream_language_selects_its_abbreviations(tone_server: RunningServer) -> None:
    text = "Das ist z. B. ein Test mit ca. zehn Wörtern. Und noch einer."
    async with connect(f"{tone_server.ws_url}?language=de") as ws:
        assert (await receive(ws))["language"] == "de"
        await send(ws, type="text", text=text)
        await send(ws, type="end")
        transcript = await receive_all(ws)
    assert [s["text"] for s in transcript.messages("segment")] == [
        "Das ist z. B. ein Test mit ca. zehn Wörtern.",
        "Und noch einer.",
    ]


async def test_a_bad_language_is_refused(tone_server: RunningServer) -> None:
    async with connect(tone_server.ws_url) as ws:
        await receive(ws)
        await send(ws, type="config", language="not a language!")
        error = await receive(ws)
    assert error["code"] == "bad_message" and "language" in error["message"]


class LimitedTone(ToneProvider):
    """The tone provider behind an upstream that takes at most 40 characters a request."""

    max_chars = 40


async def test_a_provider_text_limit_caps_segment_length() -> None:
    text = "This sentence is much longer than forty characters, so it must be cut, cleanly, somewhere."
    async with run_server(tone_settings(), {"tone": LimitedTone()}) as server:
        async with connect(server.ws_url) as ws:
            assert (await receive(ws))["max_segment_chars"] == 40
            await send(ws, type="text", text=text)
            await send(ws, type="end")
            transcript = await receive_all(ws)
    segments = [s["text"] for s in transcript.messages("segment")]
    assert len(segments) > 1 and all(len(s) <= 40 for s in segments)
    assert " ".join(segments).split() == text.split()
