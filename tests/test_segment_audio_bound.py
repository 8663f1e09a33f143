"""A provider that sends more audio than a segment can hold ends that segment with an error,
however fast it sends: what a synthesis job buffers for a slow client is bounded by its text."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import numpy as np
from websockets.asyncio.client import connect

from stream_server.media import PcmChunk
from stream_server.providers.base import VoiceOptions
from stream_server.providers.tone import SAMPLE_RATE, ToneProvider
from stream_server.session.synthesis import max_segment_audio_s

from .conftest import run_server, tone_settings
from .helpers import receive, receive_all, send


class Babbling(ToneProvider):
    """The tone voice, but a segment's audio never ends: one second after another."""

    async def synthesize(self, text: str, options: VoiceOptions) -> AsyncGenerator[PcmChunk, None]:
        second = np.full(SAMPLE_RATE, 0.1, np.float32)
        while True:
            yield PcmChunk(second, SAMPLE_RATE)


async def test_a_segment_past_its_audio_bound_ends_in_an_error_and_the_stream_goes_on() -> None:
    async with run_server(tone_settings(), {"tone": Babbling()}) as server:
        async with connect(f"{server.ws_url}?format=pcm&sample_rate={SAMPLE_RATE}") as ws:
            await receive(ws)
            await send(ws, type="text", text="Hi. ")
            await send(ws, type="end")
            transcript = await receive_all(ws)
    errors = transcript.messages("error")
    assert [e["code"] for e in errors] == ["provider_bad_response"] and errors[0]["seq"] == 0
    assert "more than 12 s of audio for 3 characters" in errors[0]["message"]
    assert transcript.messages("done")  # the stream itself ended normally
    assert max_segment_audio_s("Hi.", 1.0) == 11.5
