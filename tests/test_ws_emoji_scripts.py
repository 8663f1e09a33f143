"""Emoji and scripts end to end: under `emoji: skip` the provider never gets emoji (an emoji-only
sentence has no audio), under `read` it does; text in a script the stream's language does not
cover gets one `warning` per script."""

from __future__ import annotations

import pytest
from websockets.asyncio.client import connect

from .conftest import RunningServer
from .helpers import Transcript, receive_all, send
from .test_ws_stream import expected_segment_ms


async def session(url: str, pieces: list[str]) -> Transcript:
    async with connect(url) as ws:
        for piece in pieces:
            await send(ws, type="text", text=piece)
            await send(ws, type="flush")
        await send(ws, type="end")
        transcript = await receive_all(ws)
    assert ws.close_code == 1000
    return transcript


def audio_by_text(transcript: Transcript) -> dict[str, float]:
    """Each segment's text (as the client sees it) and its audio_ms."""
    texts = {m["seq"]: m["text"] for m in transcript.messages("segment")}
    return {texts[m["seq"]]: m["audio_ms"] for m in transcript.messages("segment_end")}


@pytest.mark.parametrize("query", ["", "?emoji=skip"])
async def test_skipped_emoji_never_reach_the_provider(tone_server: RunningServer, query: str) -> None:
    transcript = await session(tone_server.ws_url + query, ["Well done!", "🎉🎊", "Go team 🚀 go"])
    (ready,) = transcript.messages("ready")
    assert ready["emoji"] == "skip"
    audio = audio_by_text(transcript)
    # The client sees its text as it sent it; the voice got nothing of the emoji.
    assert list(audio) == ["Well done!", "🎉🎊", "Go team 🚀 go"]
    assert audio["🎉🎊"] == 0
    assert not transcript.frames_by_segment()[1]
    assert audio["Go team 🚀 go"] == pytest.approx(expected_segment_ms("Go team go"), abs=0.01)


async def test_read_emoji_are_spoken(tone_server: RunningServer) -> None:
    transcript = await session(tone_server.ws_url + "?emoji=read", ["Well done!", "🎉🎊", "Go team 🚀 go"])
    assert transcript.messages("ready")[0]["emoji"] == "read"
    audio = audio_by_text(transcript)
    assert audio["🎉🎊"] == pytest.approx(expected_segment_ms("🎉🎊"), abs=0.01)  # a "word" for the tone
    assert audio["Go team 🚀 go"] == pytest.approx(expected_segment_ms("Go team 🚀 go"), abs=0.01)


async def test_a_script_the_language_does_not_cover_is_warned_of_once(tone_server: RunningServer) -> None:
    transcript = await session(tone_server.ws_url, ["Hello there.", "你好。", "再见 and Привет.", "Bye 😀."])
    warnings = transcript.messages("warning")
    assert [(w["code"], w["seq"]) for w in warnings] == [("unsupported_script", 1), ("unsupported_script", 2)]
    assert "Han" in warnings[0]["message"] and "Cyrillic" in warnings[1]["message"]
    # Warned of, and still spoken.
    assert all(size > 0 for size in audio_by_text(transcript).values())
    chinese = await session(tone_server.ws_url + "?language=zh", ["你好。"])
    assert not chinese.messages("warning")
