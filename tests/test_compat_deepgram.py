"""The real, unmodified Deepgram clients of Pipecat and LiveKit Agents against this server's
`/v1/speak` on loopback (the `compat` extra: `pip install -e '.[test,compat]'`).

For each: audio arrives before the whole text is given, decodes to the tone's exact length,
barge-in stops the audio (Pipecat's Clear; LiveKit drops the connection), and the library logs
no protocol error or warning. Skipped without the extra, except in CI (`CI=true`), where
.ci/run installs it."""

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
    pytest.importorskip("pipecat.services.deepgram.tts", reason=NOT_INSTALLED)
    pytest.importorskip("livekit.plugins.deepgram", reason=NOT_INSTALLED)

import aiohttp  # noqa: E402  (installed with the extra)
from livekit.plugins import deepgram as livekit_deepgram  # noqa: E402
from pipecat.services.deepgram.tts import DeepgramTTSService  # noqa: E402

from .compat_clients import (  # noqa: E402
    FIRST,
    LONG,
    PER_SEGMENT_MS,
    RATE,
    SECOND,
    PipecatAgent,
    livekit_complaints,
    livekit_ms_match,
    ms_of_frames,
    paced_server,  # noqa: F401  (a fixture)
    pipecat_complaints,  # noqa: F401  (a fixture)
    speaks_a_reply_as_it_streams,
)

MODEL = "aura-2-thalia-en"


def pipecat_agent(server: RunningServer) -> PipecatAgent:
    """Pipecat's DeepgramTTSService, its URL pointed at the server, in a real pipeline."""
    return PipecatAgent(
        DeepgramTTSService(
            api_key="unused",
            base_url=f"ws://127.0.0.1:{server.port}",
            sample_rate=RATE,
            settings=DeepgramTTSService.Settings(voice=MODEL),
        )
    )


async def test_pipecat_speaks_a_reply_as_it_streams(paced_server: RunningServer, pipecat_complaints: list[str]) -> None:
    await speaks_a_reply_as_it_streams(pipecat_agent(paced_server))
    assert pipecat_complaints == []


async def test_pipecat_barge_in_clears_the_audio(paced_server: RunningServer, pipecat_complaints: list[str]) -> None:
    async def script(agent: PipecatAgent) -> None:
        await agent.reply(LONG)
        await wait_for(lambda: len(agent.recorder.audio()) >= 5)
        mark = await agent.interrupt()  # the user spoke: Pipecat sends Clear
        await agent.reply(FIRST)
        await wait_for(lambda: agent.recorder.stopped(mark) == 1)
        # Pipecat gives every audio frame to its active context: anything of the cleared reply
        # sent after `Cleared` would be counted in the new reply's audio.
        new_audio = agent.recorder.audio(mark)
        assert ms_of_frames(new_audio) == pytest.approx(tone.expected_duration_ms(FIRST), abs=PER_SEGMENT_MS)

    agent = pipecat_agent(paced_server)
    await agent.run(script)
    assert ms_of_frames(agent.recorder.audio()) < tone.expected_duration_ms(LONG) / 2
    assert pipecat_complaints == []


# -- LiveKit Agents -----------------------------------------------------------------------------


@pytest.fixture
async def livekit_tts(paced_server: RunningServer) -> AsyncIterator[livekit_deepgram.TTS]:
    async with aiohttp.ClientSession() as http:
        tts = livekit_deepgram.TTS(
            model=MODEL,
            api_key="unused",
            base_url=f"http://127.0.0.1:{paced_server.port}/v1/speak",
            sample_rate=RATE,
            http_session=http,
        )
        yield tts
        await tts.aclose()


async def test_livekit_streams_a_reply_as_it_is_written(
    livekit_tts: livekit_deepgram.TTS, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    stream = livekit_tts.stream()
    first, rest = SECOND.split(" ", 1)
    # LiveKit sends a word once the next one shows it has ended.
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


async def test_livekit_one_shot_synthesis_uses_the_rest_call(
    livekit_tts: livekit_deepgram.TTS, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    frame = await livekit_tts.synthesize(FIRST).collect()
    assert livekit_ms_match(frame.samples_per_channel, tone.expected_duration_ms(FIRST), segments=1)
    assert livekit_complaints(caplog) == []


async def test_livekit_barge_in_ends_the_stream_on_the_server(
    paced_server: RunningServer, livekit_tts: livekit_deepgram.TTS, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    stream = livekit_tts.stream()
    stream.push_text(LONG)
    stream.flush()
    async for _ in stream:
        break  # audio is playing: the user speaks
    await stream.aclose()  # LiveKit's barge-in: the connection leaves its pool
    # The agent's next reply drains the pool: the interrupted connection is closed, and with it
    # the server's stream; the new reply's audio is its own only.
    reply = livekit_tts.stream()
    reply.push_text(FIRST)
    reply.flush()
    reply.end_input()
    started = time.monotonic()
    samples = 0
    async for event in reply:
        samples += event.frame.samples_per_channel
    assert livekit_ms_match(samples, tone.expected_duration_ms(FIRST), segments=1)
    await wait_for(lambda: len(paced_server.state.admission) <= 1, timeout=5)
    assert time.monotonic() - started < tone.expected_duration_ms(LONG) / 1000
    assert livekit_complaints(caplog) == []
