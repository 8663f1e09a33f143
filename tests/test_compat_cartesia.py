"""The real, unmodified Cartesia clients of Pipecat and LiveKit Agents against this server's
`/tts/websocket` and `/tts/bytes` on loopback (the `compat` extra: `pip install -e '.[test,compat]'`).

For each: audio arrives before the whole text is given, decodes to the tone's exact length,
barge-in stops the audio (Pipecat's cancel of its context; LiveKit drops the connection), and the
library logs no protocol error or warning. Skipped without the extra, except in CI (`CI=true`)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator

import pytest

from stream_server.providers import tone

from .conftest import RunningServer
from .helpers import wait_for

NOT_INSTALLED = "the compat extra is not installed: pip install -e '.[test,compat]'"
if not os.environ.get("CI"):  # CI installs the extra: there, a missing library fails the import below
    pytest.importorskip("pipecat.services.cartesia.tts", reason=NOT_INSTALLED)
    pytest.importorskip("livekit.plugins.cartesia", reason=NOT_INSTALLED)

import aiohttp
from livekit.plugins import cartesia as livekit_cartesia
from pipecat.services.cartesia.tts import CartesiaTTSService

from .compat_clients import (
    FIRST,
    LONG,
    PER_SEGMENT_MS,
    RATE,
    SECOND,
    PipecatAgent,
    beeps_ms,
    livekit_complaints,
    livekit_ms_match,
    ms_of_frames,
    paced_server,  # noqa: F401  (a fixture)
    pipecat_complaints,  # noqa: F401  (a fixture)
    speaks_a_reply_as_it_streams,
    word_frame_offsets_ms,
)

VOICE = "a0e99841-438c-4a64-b679-ae501e7d6091"  # a Cartesia voice id: the server's default voice


def pipecat_agent(server: RunningServer) -> PipecatAgent:
    """Pipecat's CartesiaTTSService, its URL pointed at the server, in a real pipeline."""
    return PipecatAgent(
        CartesiaTTSService(
            api_key="unused",
            url=f"ws://127.0.0.1:{server.port}/tts/websocket",
            sample_rate=RATE,
            settings=CartesiaTTSService.Settings(voice=VOICE),
        )
    )


async def test_pipecat_speaks_a_reply_as_it_streams(paced_server: RunningServer, pipecat_complaints: list[str]) -> None:
    await speaks_a_reply_as_it_streams(pipecat_agent(paced_server))
    assert pipecat_complaints == []


async def test_pipecat_barge_in_cancels_the_context(paced_server: RunningServer, pipecat_complaints: list[str]) -> None:
    async def script(agent: PipecatAgent) -> None:
        await agent.reply(LONG)
        await wait_for(lambda: len(agent.recorder.audio()) >= 5)
        mark = await agent.interrupt()  # the user spoke: Pipecat sends cancel
        await agent.reply(FIRST)
        await wait_for(lambda: agent.recorder.stopped(mark) == 1)
        new_audio = agent.recorder.audio(mark)
        assert ms_of_frames(new_audio) == pytest.approx(tone.expected_duration_ms(FIRST), abs=PER_SEGMENT_MS)
        # The cancelled context's stream is gone on the server; only the new reply's was open.
        await wait_for(lambda: len(paced_server.state.admission) == 0, timeout=5)

    agent = pipecat_agent(paced_server)
    await agent.run(script)
    assert ms_of_frames(agent.recorder.audio()) < tone.expected_duration_ms(LONG) / 2
    assert pipecat_complaints == []


# -- LiveKit Agents -----------------------------------------------------------------------------


@pytest.fixture
async def livekit_tts(paced_server: RunningServer) -> AsyncIterator[livekit_cartesia.TTS]:
    async with aiohttp.ClientSession() as http:
        tts = livekit_cartesia.TTS(
            voice=VOICE,
            api_key="unused",
            base_url=f"http://127.0.0.1:{paced_server.port}",
            sample_rate=RATE,
            http_session=http,
        )
        yield tts
        await tts.aclose()


async def test_livekit_streams_a_reply_as_it_is_written(
    livekit_tts: livekit_cartesia.TTS, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    stream = livekit_tts.stream()
    first, rest = SECOND.split(" ", 1)
    stream.push_text(f"{FIRST} {first} ")
    samples = 0
    first_audio_before_the_rest = False
    async for event in stream:
        if samples == 0:
            # The first sentence is heard while the rest of the reply is still to come.
            first_audio_before_the_rest = True
            stream.push_text(rest)
            stream.flush()
            stream.end_input()
        samples += event.frame.samples_per_channel
    assert first_audio_before_the_rest
    expected = tone.expected_duration_ms(FIRST) + tone.expected_duration_ms(SECOND)
    assert livekit_ms_match(samples, expected, segments=2)
    assert livekit_complaints(caplog) == []


async def test_livekit_one_shot_synthesis_uses_tts_bytes(
    livekit_tts: livekit_cartesia.TTS, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    frame = await livekit_tts.synthesize(FIRST).collect()
    assert livekit_ms_match(frame.samples_per_channel, tone.expected_duration_ms(FIRST), segments=1)
    assert livekit_complaints(caplog) == []


async def test_livekit_barge_in_ends_the_stream_on_the_server(
    paced_server: RunningServer, livekit_tts: livekit_cartesia.TTS, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    stream = livekit_tts.stream()
    stream.push_text(LONG)
    stream.flush()
    async for _ in stream:
        break  # audio is playing: the user speaks
    await stream.aclose()  # LiveKit's barge-in
    reply = livekit_tts.stream()
    reply.push_text(FIRST)
    reply.flush()
    reply.end_input()
    started = time.monotonic()
    samples = 0
    async for event in reply:
        samples += event.frame.samples_per_channel
    # The new reply's audio is its own only (LiveKit drops other contexts' messages).
    assert livekit_ms_match(samples, tone.expected_duration_ms(FIRST), segments=1)
    # The interrupted context's stream does not play on: it ends with its connection.
    await wait_for(lambda: len(paced_server.state.admission) == 0, timeout=5)
    assert time.monotonic() - started < tone.expected_duration_ms(LONG) / 1000
    assert livekit_complaints(caplog) == []


async def test_pipecat_gets_word_timestamps(paced_server: RunningServer, pipecat_complaints: list[str]) -> None:
    """Pipecat asks `add_timestamps` and turns Cartesia's `timestamps` into its word frames."""
    agent = pipecat_agent(paced_server)
    await speaks_a_reply_as_it_streams(agent)
    assert word_frame_offsets_ms(agent) == pytest.approx(beeps_ms(), abs=1.0)
    assert pipecat_complaints == []
