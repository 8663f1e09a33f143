"""The real, unmodified ElevenLabs clients against this server on loopback (the `compat` extra):
Pipecat's `ElevenLabsTTSService` (multi-stream-input), LiveKit Agents' elevenlabs plugin
(`base_url`, multi-stream-input) and the official `elevenlabs` SDK's HTTP stream call.

For each: audio arrives before the whole text is given, decodes to the tone's exact length,
barge-in stops the audio, and the library logs no protocol error or warning. Skipped without the
extra, except in CI (`CI=true`), where .ci/run installs it."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator

import pytest

from stream_server.providers import tone

from .conftest import RunningServer
from .helpers import wait_for

NOT_INSTALLED = "the compat extra is not installed: pip install -e '.[test,compat]'"
if not os.environ.get("CI"):  # CI installs the extra: there, a missing library fails the import below
    pytest.importorskip("pipecat.services.elevenlabs.tts", reason=NOT_INSTALLED)
    pytest.importorskip("livekit.plugins.elevenlabs", reason=NOT_INSTALLED)
    pytest.importorskip("elevenlabs", reason=NOT_INSTALLED)

import aiohttp
from elevenlabs.client import AsyncElevenLabs
from elevenlabs.core.api_error import ApiError
from livekit.plugins import elevenlabs as livekit_elevenlabs
from pipecat.services.elevenlabs.tts import ElevenLabsTTSService

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

VOICE = "beep"  # the tone provider's voice, taken as is
MODEL = "eleven_flash_v2_5"


def pipecat_agent(server: RunningServer) -> PipecatAgent:
    """Pipecat's ElevenLabsTTSService, its URL pointed at the server, in a real pipeline."""
    return PipecatAgent(
        ElevenLabsTTSService(
            api_key="unused",
            url=f"ws://127.0.0.1:{server.port}",
            sample_rate=RATE,
            settings=ElevenLabsTTSService.Settings(voice=VOICE, model=MODEL),
        )
    )


async def test_pipecat_speaks_a_reply_as_it_streams(paced_server: RunningServer, pipecat_complaints: list[str]) -> None:
    await speaks_a_reply_as_it_streams(pipecat_agent(paced_server))
    assert pipecat_complaints == []


async def test_pipecat_barge_in_closes_the_context(paced_server: RunningServer, pipecat_complaints: list[str]) -> None:
    async def script(agent: PipecatAgent) -> None:
        await agent.reply(LONG)
        await wait_for(lambda: len(agent.recorder.audio()) >= 5)
        mark = await agent.interrupt()  # the user spoke: Pipecat closes the context
        await agent.reply(FIRST)
        await wait_for(lambda: agent.recorder.stopped(mark) == 1)
        new_audio = agent.recorder.audio(mark)
        assert ms_of_frames(new_audio) == pytest.approx(tone.expected_duration_ms(FIRST), abs=PER_SEGMENT_MS)

    agent = pipecat_agent(paced_server)
    await agent.run(script)
    assert ms_of_frames(agent.recorder.audio()) < tone.expected_duration_ms(LONG) / 2
    # The interrupted context's stream was cancelled on the server, not left playing out.
    await wait_for(lambda: len(paced_server.state.admission) == 0, timeout=5)
    assert pipecat_complaints == []


# -- LiveKit Agents -----------------------------------------------------------------------------


@pytest.fixture
async def livekit_tts(paced_server: RunningServer) -> AsyncIterator[livekit_elevenlabs.TTS]:
    async with aiohttp.ClientSession() as http:
        tts = livekit_elevenlabs.TTS(
            voice_id=VOICE,
            model=MODEL,
            api_key="unused",
            base_url=f"http://127.0.0.1:{paced_server.port}/v1",
            encoding=f"pcm_{RATE}",
            http_session=http,
        )
        yield tts
        await tts.aclose()


async def test_livekit_streams_a_reply_as_it_is_written(
    livekit_tts: livekit_elevenlabs.TTS, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    stream = livekit_tts.stream()
    first, rest = SECOND.split(" ", 1)
    # LiveKit (auto_mode) sends a sentence once the next word shows it has ended.
    stream.push_text(f"{FIRST} {first} ")
    samples = 0
    first_audio_before_the_rest = False
    async for event in stream:
        if samples == 0:
            # The first sentence is heard while the rest of the reply is still to come.
            first_audio_before_the_rest = True
            stream.push_text(rest)
            stream.end_input()
        samples += event.frame.samples_per_channel
    assert first_audio_before_the_rest
    expected = tone.expected_duration_ms(FIRST) + tone.expected_duration_ms(SECOND)
    assert livekit_ms_match(samples, expected, segments=2)
    assert livekit_complaints(caplog) == []


async def test_livekit_barge_in_hears_only_the_new_reply(
    paced_server: RunningServer, livekit_tts: livekit_elevenlabs.TTS, caplog: pytest.LogCaptureFixture
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
    samples = 0
    async for event in reply:
        samples += event.frame.samples_per_channel
    # The reply's audio is its own only. (LiveKit closed the interrupted context right after its
    # flush, so, as on ElevenLabs, the server plays that one out; LiveKit drops what comes of it.)
    assert livekit_ms_match(samples, tone.expected_duration_ms(FIRST), segments=1)
    assert livekit_complaints(caplog) == []


# -- the elevenlabs SDK ---------------------------------------------------------------------------


async def test_sdk_http_stream_speaks_as_it_synthesizes(paced_server: RunningServer) -> None:
    client = AsyncElevenLabs(api_key="unused", base_url=paced_server.http_url)
    text = f"{FIRST} {SECOND}"
    chunks: list[bytes] = []
    first_chunk_before_the_end = False
    async for chunk in client.text_to_speech.stream(
        voice_id=VOICE, text=text, model_id=MODEL, output_format=f"pcm_{RATE}"
    ):
        if not chunks:
            # Streamed: the first audio comes while the server still has the second sentence to make.
            first_chunk_before_the_end = len(paced_server.state.admission) == 1
        chunks.append(chunk)
    audio = b"".join(chunks)
    assert first_chunk_before_the_end
    expected = tone.expected_duration_ms(FIRST) + tone.expected_duration_ms(SECOND)
    assert len(audio) / 2 / RATE * 1000 == pytest.approx(expected, abs=2 * PER_SEGMENT_MS)


async def test_sdk_http_stream_refuses_an_unknown_voice(paced_server: RunningServer) -> None:
    client = AsyncElevenLabs(api_key="unused", base_url=paced_server.http_url)
    with pytest.raises(ApiError) as refused:
        async for _ in client.text_to_speech.stream(voice_id="21m00Tcm4TlvDq8ikWAM", text=FIRST):
            pass
    assert refused.value.status_code == 404
    assert refused.value.body["detail"]["status"] == "voice_not_found"


async def test_pipecat_gets_word_timestamps_from_the_alignment(
    paced_server: RunningServer, pipecat_complaints: list[str]
) -> None:
    """Pipecat turns each audio message's `alignment` into its word frames: every word, at its
    beep's time (Pipecat adds each message's span to its clock, so spans must tile)."""
    agent = pipecat_agent(paced_server)
    await speaks_a_reply_as_it_streams(agent)
    assert word_frame_offsets_ms(agent) == pytest.approx(beeps_ms(), abs=1.5)  # whole milliseconds on the wire
    assert pipecat_complaints == []
