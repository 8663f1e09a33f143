"""Piper's inference queue under several streams: a new stream's first segment before others' look-ahead.

Real model, real server, real WebSocket clients. The one inference worker is held on a first
stream's segment while the others queue their jobs; the order in which Piper then starts each
segment's inference is recorded, so the test checks the scheduling order, never a duration.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest
from websockets.asyncio.client import ClientConnection, connect

from stream_server.providers.base import Urgency, VoiceOptions

from .conftest import RunningServer, run_server, tone_settings
from .helpers import assert_speech_like, pcm_samples, receive, receive_all, send, wait_for
from .piper_jobs import JobLog

HOLD = "Zed holds the only worker for a while."
A1, A2 = "Anna walked along the quiet harbour.", "The boats were resting in the evening light."
B1, B2 = "Ben counted the apples on the table.", "There were more than he had expected."
C1 = "Carla has just started to speak."
TIMEOUT_S = 30.0


@pytest.fixture
async def piper_server(piper_provider, tone_provider) -> AsyncIterator[RunningServer]:
    # One segment synthesized ahead: each stream queues its second segment with its first.
    settings = tone_settings(providers=("piper", "tone"), provider="piper", lookahead_segments=1)
    async with run_server(settings, {"piper": piper_provider, "tone": tone_provider}) as server:
        yield server


async def test_a_new_streams_first_segment_is_synthesized_before_queued_look_ahead(
    piper_server: RunningServer, piper_provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = JobLog(monkeypatch, HOLD, TIMEOUT_S)

    def jobs_in_flight() -> int:
        return piper_provider.stats()["jobs_in_flight"]

    await wait_for(lambda: jobs_in_flight() == 0)
    jobs_before = piper_provider.stats()["jobs_started"]
    async with AsyncExitStack() as stack:

        async def start_stream(*sentences: str) -> ClientConnection:
            ws = await stack.enter_async_context(connect(piper_server.ws_url))
            await receive(ws)
            await send(ws, type="text", text=" ".join(sentences))
            await send(ws, type="end")
            return ws

        try:
            hold = await start_stream(HOLD)
            await wait_for(lambda: log.started == [HOLD])
            # Two streams that will be playing: each queues its first segment and its look-ahead.
            a = await start_stream(A1, A2)
            await wait_for(lambda: jobs_in_flight() == 3)
            b = await start_stream(B1, B2)
            await wait_for(lambda: jobs_in_flight() == 5)
            # A new stream arrives last, behind both streams' look-ahead in submission order.
            c = await start_stream(C1)
            await wait_for(lambda: jobs_in_flight() == 6)
        finally:
            log.release.set()
        transcripts = await asyncio.wait_for(asyncio.gather(*(receive_all(ws) for ws in (hold, a, b, c))), TIMEOUT_S)

    # First-come first-served would be HOLD, A1, A2, B1, B2, C1.
    assert log.started[:4] == [HOLD, A1, B1, C1]
    # Look-ahead, and A2 and B2 become due as A1 and B1 are sent: either order is right.
    assert sorted(log.started[4:]) == sorted([A2, B2])
    for transcript, sentences in zip(transcripts, ([HOLD], [A1, A2], [B1, B2], [C1]), strict=True):
        assert [s["text"] for s in transcript.messages("segment")] == sentences
        assert not transcript.messages("error")
        assert_speech_like(pcm_samples(transcript.frames()), 22050, " ".join(sentences))
    await wait_for(lambda: jobs_in_flight() == 0)
    # A one-sentence segment of the chunked voice is one job per decoder window (the first with
    # the front part): its end costs no further trip through the queue.
    assert len(log.started) == 6 and log.windows >= 12
    assert piper_provider.stats()["jobs_started"] - jobs_before == log.windows


@pytest.mark.parametrize(("text", "sentences"), [("One sentence here. And a second one!", 2), ("  ", 0)])
async def test_each_window_is_one_job_and_the_last_one_ends_the_segment(
    piper_provider, text: str, sentences: int
) -> None:
    await wait_for(lambda: piper_provider.stats()["jobs_in_flight"] == 0)
    before = piper_provider.stats()["jobs_started"]
    options = VoiceOptions(voice="en_US-joe-medium", urgency=Urgency(urgent=True))
    chunks = [chunk async for chunk in piper_provider.synthesize(text, options)]
    # The chunked voice: a sentence is one job per window (the first with the front part), each
    # yielding its audio; the last window ends the segment.
    assert sum(len(chunk.samples) for chunk in chunks) >= 0.6 * sentences * 22050
    assert len(chunks) >= 2 * sentences and bool(chunks) == bool(sentences)
    # Text with nothing to say still needs one job (phonemizing is off the event loop too).
    assert piper_provider.stats()["jobs_started"] - before == max(len(chunks), 1)
