"""The pause after a segment follows how the segmenter ended it, end to end through a server."""

from __future__ import annotations

import pytest
from websockets.asyncio.client import connect

from stream_server.providers.tone import ToneProvider

from .conftest import run_server, tone_settings
from .helpers import receive, receive_all, send


async def test_every_sentence_terminator_gets_the_sentence_pause(tone_provider: ToneProvider) -> None:
    # "؟" (Arabic question mark) ends a sentence like "?": it gets the sentence pause, like
    # "Yes."; the flushed "Sure," the clause pause. One word each, so each segment's audio is
    # one beep plus its pause.
    settings = tone_settings(sentence_pause_ms=300, clause_pause_ms=60)
    async with run_server(settings, {"tone": tone_provider}) as server:
        async with connect(server.ws_url) as ws:
            await receive(ws)
            await send(ws, type="text", text="Really؟ Yes. Sure,")
            await send(ws, type="end")
            transcript = await receive_all(ws)
    assert [s["text"] for s in transcript.messages("segment")] == ["Really؟", "Yes.", "Sure,"]
    really, yes, sure = (end["audio_ms"] for end in transcript.messages("segment_end"))
    assert really == pytest.approx(yes, abs=1)
    assert really - sure == pytest.approx(300 - 60, abs=3)
