"""A misbehaving provider, a config that replaces the stream, pacing and quick barge-in."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator

import numpy as np
import pytest
from websockets.asyncio.client import connect

from stream_server.buffer import Pacer
from stream_server.providers import ProviderError
from stream_server.providers.base import PcmChunk, VoiceOptions
from stream_server.providers.tone import ToneProvider

from .conftest import RunningServer, run_server, tone_settings
from .helpers import Transcript, pcm_samples, receive, receive_all, receive_until, send


class FlakyTone(ToneProvider):
    """Tone, except on segments that contain a trigger word."""

    async def synthesize(self, text: str, options: VoiceOptions) -> AsyncGenerator[PcmChunk, None]:
        if "upstream" in text:
            yield PcmChunk(np.zeros(2400, np.float32), 24000)
            raise ProviderError("upstream answered 503")
        if "stereo" in text:
            yield PcmChunk(np.zeros((2, 2400), np.float32), 24000)
        if "crash" in text:
            raise RuntimeError(f"bug while reading {text!r}")
        async for chunk in super().synthesize(text, options):
            yield chunk


@pytest.mark.parametrize(
    ("bad", "code", "message"),
    [
        ("The upstream fails.", "provider_error", "upstream answered 503"),
        ("A stereo chunk.", "provider_error", "unusable audio"),
        ("Now crash here.", "provider_error", "tone failed on this segment"),
    ],
)
async def test_a_failing_segment_is_reported_and_the_stream_goes_on(bad, code, message, capfd) -> None:
    async with run_server(tone_settings(log_level="info"), {"tone": FlakyTone()}) as server:
        async with connect(server.ws_url) as ws:
            await receive(ws)
            await send(ws, type="text", text=f"First is fine. {bad} Last is fine.")
            await send(ws, type="end")
            transcript = await receive_all(ws)
    kinds = [(m["type"], m.get("seq")) for m in transcript.messages()]
    assert kinds == [
        ("segment", 0), ("segment_end", 0),
        ("segment", 1), ("segment_end", 1), ("error", 1),
        ("segment", 2), ("segment_end", 2),
        ("done", None),
    ]  # fmt: skip
    error = transcript.messages("error")[0]
    assert error["code"] == code and message in error["message"]
    assert ws.close_code == 1000
    # The text of the segment is never in the logs, not even in an exception's message.
    assert "crash here" not in capfd.readouterr().err


async def test_audio_flows_after_a_config_message(tone_server: RunningServer) -> None:
    async with connect(tone_server.ws_url) as ws:
        await receive(ws)
        await send(ws, type="config", sample_rate=16000)
        assert (await receive(ws))["sample_rate"] == 16000
        await send(ws, type="text", text="Four words right here.")
        await send(ws, type="end")
        transcript = await receive_all(ws)
    samples = pcm_samples(transcript.frames())
    assert len(samples) / 16000 * 1000 >= 4 * 80
    # The session opened from the URL was closed, not leaked (the server cleans up just after it
    # closed the connection).
    from .helpers import wait_for

    await wait_for(lambda: not tone_server.state.streams)


async def test_queued_segments_count_against_the_pending_limit(tone_provider) -> None:
    settings = tone_settings(max_pending_chars=200, ring_ms=100)
    async with run_server(settings, {"tone": tone_provider}) as server:
        # close_timeout: this client stops reading, so its closing handshake would wait long.
        async with connect(server.ws_url, max_queue=1, close_timeout=0.5) as ws:
            await receive(ws)
            # Complete sentences leave the segmenter at once, but wait for synthesis in the queue.
            for i in range(40):
                await send(ws, type="text", text=f"Sentence {i:02} is here. ")
            session = next(iter(server.state.streams))
            transcript = await receive_until(ws, "error")
            assert transcript.messages("error")[0]["code"] == "pending_text_limit"
            accepted = session.stats.text_chars
            assert accepted <= 200 + len("Sentence 00 is here. ")


def test_pacer_keeps_to_the_lead_and_restarts_after_a_gap() -> None:
    now = [0.0]
    pacer = Pacer(lead_ms=100)
    for _ in range(5):  # a burst of 100 ms goes out at once
        assert pacer.delay(now[0]) == 0
        pacer.sent(20)
    assert pacer.delay(now[0]) == 0  # exactly at the lead
    pacer.sent(20)
    assert pacer.delay(now[0]) == pytest.approx(0.020)  # 20 ms over: wait 20 ms
    now[0] = 10.0  # a long pause in the text: playback ran dry
    assert pacer.delay(now[0]) == 0
    for _ in range(5):
        pacer.sent(20)
        assert pacer.delay(now[0]) == pytest.approx(0, abs=1e-9)  # a fresh burst
    pacer.sent(20)
    assert pacer.delay(now[0]) > 0
    pacer.reset()
    assert pacer.delay(now[0]) == 0
    assert Pacer(0).delay(0.0) == 0  # unpaced


async def test_paced_audio_runs_no_further_ahead_than_the_lead(tone_provider) -> None:
    lead_ms = 300
    async with run_server(tone_settings(max_lead_ms=lead_ms), {"tone": tone_provider}) as server:
        async with connect(server.ws_url) as ws:
            assert (await receive(ws))["max_lead_ms"] == lead_ms
            await send(ws, type="text", text=" ".join(["word"] * 20) + ".")  # 1600 ms of audio
            await send(ws, type="end")
            first: float | None = None
            transcript = Transcript()
            async for data in ws:
                if isinstance(data, bytes) and first is None:
                    first = time.monotonic()
                transcript.items.append(data)
            elapsed_ms = (time.monotonic() - (first or 0)) * 1000
    audio_ms = len(pcm_samples(transcript.frames())) / 24
    # A lower bound only: a slow machine can be later, never earlier.
    assert elapsed_ms >= audio_ms - lead_ms - 40


async def test_barge_in_on_a_paced_stream_leaves_little_stale_audio(tone_provider) -> None:
    lead_ms = 300
    text = " ".join(f"Sentence {i} is here and it goes on." for i in range(100))
    async with run_server(tone_settings(max_lead_ms=lead_ms), {"tone": tone_provider}) as server:
        async with connect(f"{server.ws_url}?sample_rate=8000") as ws:
            await receive(ws)
            await send(ws, type="text", text=text)
            await receive_until(ws, "segment")
            await send(ws, type="cancel")
            stale = await receive_until(ws, "cancelled")
    stale_ms = len(b"".join(stale.frames())) / 16
    # The listener gets at most the lead (plus what left while the cancel travelled).
    assert stale_ms <= lead_ms + 200


async def test_a_client_that_ignores_its_replies_is_closed_with_1008(tone_provider: ToneProvider) -> None:
    """Replies wait behind audio the client does not read; past the control lane's bound the
    connection is closed with a close frame, not dropped."""
    from .helpers import wait_for

    async with run_server(tone_settings(), {"tone": tone_provider}) as server:
        # The client library stops reading its socket after 4 unread messages: backpressure.
        async with connect(f"{server.ws_url}?format=f32&sample_rate=48000", max_queue=4) as ws:
            await send(ws, type="text", text="word " * 3000 + ".")
            await send(ws, type="flush")
            await wait_for(lambda: any(s.backpressured for s in server.state.streams))
            for _ in range(40):
                await ws.send(b"not json")  # each earns an error reply that cannot be sent
            transcript = await receive_all(ws)
        assert ws.close_code == 1008 and ws.close_reason == "too many unread replies"
        assert len(transcript.messages("error")) <= 32  # the unsent replies are dropped with the connection
        await wait_for(lambda: not server.state.streams)


class WatchedGate(asyncio.Semaphore):
    """The server's ahead gate, counting the streams waiting for it."""

    waiting = 0

    async def acquire(self) -> bool:
        self.waiting += 1
        try:
            return await super().acquire()
        finally:
            self.waiting -= 1


async def test_audio_a_listener_needs_now_does_not_wait_behind_audio_made_far_ahead(
    tone_provider: ToneProvider,
) -> None:
    """Streams far ahead of playback encode through a shared gate; urgent audio does not."""
    from .helpers import wait_for

    async with run_server(tone_settings(), {"tone": tone_provider}) as server:
        server.state.resources.ahead_gate = gate = WatchedGate(2)
        await gate.acquire()
        await gate.acquire()  # the test holds every turn for audio made ahead
        # Unpaced: everything it gets is ahead of real time, so it soon needs the gate.
        async with connect(f"{server.ws_url}?max_lead_ms=0") as ahead, connect(server.ws_url) as urgent:
            await receive(ahead)
            await send(ahead, type="text", text="word " * 200 + "end.")
            await send(ahead, type="end")
            await wait_for(lambda: gate.waiting == 1)
            await receive(urgent)
            await send(urgent, type="text", text="Heard at once.")
            await send(urgent, type="end")
            heard = await receive_all(urgent)  # completes while the gate is held...
            assert heard.messages("done") and urgent.close_code == 1000
            assert gate.waiting == 1  # ...and the other one still waits for its turn
            gate.release()
            gate.release()
            rest = await receive_all(ahead)
        assert rest.messages("done") and ahead.close_code == 1000
