"""The Wyoming listener end to end: a real server, the `wyoming` package's own client
(`AsyncClient.from_uri`, unmodified), audio decoded back and measured."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from wyoming.audio import AudioChunk, AudioStart
from wyoming.client import AsyncClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.ping import Ping
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeVoice

from stream_server.providers import ProviderError, tone
from stream_server.providers.base import PcmChunk, VoiceInfo, VoiceOptions
from stream_server.transports.wyoming.endpoint import TcpAddress

from .conftest import RunningServer, run_server, tone_settings
from .helpers import assert_speech_like, wait_for
from .test_ws_lifecycle import stream_tasks

TIMEOUT_S = 20.0


def wyoming_uri(server: RunningServer) -> str:
    bound = server.server.config.loaded_app.app.state.wyoming.bound  # type: ignore[union-attr]
    return f"tcp://{bound.host}:{bound.port}" if isinstance(bound, TcpAddress) else f"unix://{bound.path}"


@asynccontextmanager
async def wyoming_server(loaded: dict[str, Any], **overrides: Any) -> AsyncIterator[RunningServer]:
    overrides.setdefault("wyoming_uri", "tcp://127.0.0.1:0")
    async with run_server(tone_settings(**overrides), loaded) as server:
        yield server


@dataclass
class Answer:
    """What the server sent for one request, in order, with when each event came."""

    events: list[tuple[float, Event]] = field(default_factory=list)

    def types(self) -> list[str]:
        return [e.type for _, e in self.events if e.type != "audio-chunk"]

    def pcm(self) -> bytes:
        return b"".join(AudioChunk.from_event(e).audio for _, e in self.events if e.type == "audio-chunk")

    def starts(self) -> list[AudioStart]:
        return [AudioStart.from_event(e) for _, e in self.events if e.type == "audio-start"]

    def blocks(self) -> list[bytes]:
        """The audio between each audio-start and its audio-stop."""
        out: list[bytes] = []
        for _, event in self.events:
            if event.type == "audio-start":
                out.append(b"")
            elif event.type == "audio-chunk":
                out[-1] += AudioChunk.from_event(event).audio
        return out


async def read_until(client: AsyncClient, last: str, answer: Answer | None = None) -> Answer:
    answer = answer or Answer()
    async with asyncio.timeout(TIMEOUT_S):
        while True:
            event = await client.read_event()
            assert event is not None, f"connection closed before {last!r}: {answer.types()}"
            answer.events.append((asyncio.get_running_loop().time(), event))
            if event.type == last:
                return answer


def samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def tone_ms(pcm: bytes) -> float:
    return len(pcm) / 2 / tone.SAMPLE_RATE * 1000


# Each segment's seams (fades, the kept edge of the provider's silence) may add a few ms.
SEAM_MS = 3


async def test_describe_lists_every_voice_of_every_provider_and_streaming(tone_provider, piper_provider) -> None:
    async with wyoming_server({"tone": tone_provider, "piper": piper_provider}, providers=("tone", "piper")) as server:
        async with AsyncClient.from_uri(wyoming_uri(server)) as client:
            await client.write_event(Describe().event())
            info = Info.from_event((await read_until(client, "info")).events[-1][1])
    (program,) = info.tts
    assert program.supports_synthesize_streaming and program.installed and program.version
    voices = {v.name: v for v in program.voices}
    assert set(voices) == {"beep", "low", "en_US-joe-medium"}
    joe = voices["en_US-joe-medium"]
    assert joe.languages == ["en_US"] and joe.installed
    assert "Piper" in joe.attribution.name and joe.attribution.url.startswith("https://")
    assert joe.description == "en_US-joe-medium (piper)"


async def test_one_shot_synthesize_is_one_audio_block_of_the_right_length(tone_provider) -> None:
    text = "Hello there. How are you today? Fine, thanks."
    async with wyoming_server({"tone": tone_provider}) as server, AsyncClient.from_uri(wyoming_uri(server)) as client:
        await client.write_event(Synthesize(text=text, voice=SynthesizeVoice(name="low")).event())
        answer = await read_until(client, "audio-stop")
        # The connection takes another request after it.
        await client.write_event(Synthesize(text="Again.").event())
        again = await read_until(client, "audio-stop")
    assert answer.types() == ["audio-start", "audio-stop"]
    (start,) = answer.starts()
    assert (start.rate, start.width, start.channels) == (tone.SAMPLE_RATE, 2, 1)
    assert all(AudioChunk.from_event(e).rate == tone.SAMPLE_RATE for _, e in answer.events if e.type == "audio-chunk")
    assert tone_ms(answer.pcm()) == pytest.approx(tone.expected_duration_ms(text), abs=3 * SEAM_MS)
    audio = samples(answer.pcm())
    assert np.sqrt(np.mean(audio**2)) > 0.05
    assert tone_ms(again.pcm()) == pytest.approx(tone.expected_duration_ms("Again."), abs=SEAM_MS)


async def test_streaming_token_by_token_answers_per_sentence_before_the_text_ends(tone_provider) -> None:
    first, rest = "The first sentence is here. ", ["And ", "the second ", "one. ", "A third", " one."]
    async with wyoming_server({"tone": tone_provider}) as server, AsyncClient.from_uri(wyoming_uri(server)) as client:
        await client.write_event(SynthesizeStart(voice=SynthesizeVoice(name="beep")).event())
        for token in first.split(" "):
            await client.write_event(SynthesizeChunk(text=token + " ").event())
        # The first sentence's audio comes while the request is still open.
        answer = await read_until(client, "audio-stop")
        for token in rest:
            await client.write_event(SynthesizeChunk(text=token).event())
        # Home Assistant sends the whole text again, for servers without streaming: ignored.
        await client.write_event(Synthesize(text=first + "".join(rest)).event())
        await client.write_event(SynthesizeStop().event())
        await read_until(client, "synthesize-stopped", answer)
    assert answer.types() == ["audio-start", "audio-stop"] * 3 + ["synthesize-stopped"]
    assert {(s.rate, s.width, s.channels) for s in answer.starts()} == {(tone.SAMPLE_RATE, 2, 1)}
    sentences = ["The first sentence is here.", "And the second one.", "A third one."]
    assert [tone_ms(b) for b in answer.blocks()] == pytest.approx([tone.expected_duration_ms(s) for s in sentences], abs=SEAM_MS)


async def test_piper_streaming_audio_is_speech_of_each_sentence(piper_provider) -> None:
    sentences = ["Hello there, this is the first sentence.", "And here is the second one, a little longer."]
    async with wyoming_server({"piper": piper_provider}, providers=("piper",), provider="piper") as server:
        async with AsyncClient.from_uri(wyoming_uri(server)) as client:
            await client.write_event(SynthesizeStart().event())
            for word in " ".join(sentences).split(" "):
                await client.write_event(SynthesizeChunk(text=word + " ").event())
            await client.write_event(SynthesizeStop().event())
            answer = await read_until(client, "synthesize-stopped")
    rate = answer.starts()[0].rate
    assert rate == 22050 and len(answer.blocks()) == 2
    for sentence, block in zip(sentences, answer.blocks(), strict=True):
        assert_speech_like(samples(block), rate, sentence)


async def test_a_client_gone_mid_stream_frees_everything(tone_provider) -> None:
    async with wyoming_server({"tone": tone_provider}, ring_ms=500) as server:
        baseline = (await server.health())["tasks"]
        client = AsyncClient.from_uri(wyoming_uri(server))
        await client.connect()
        await client.write_event(SynthesizeStart().event())
        await client.write_event(SynthesizeChunk(text=" ".join(["A long stream of words."] * 2000)).event())
        await read_until(client, "audio-chunk")
        (stream,) = server.state.streams
        assert stream_tasks(stream.id), "the stream should be busy when the client leaves"
        await wait_for(lambda: stream.backpressured)  # it is mid-stream: the client stopped reading
        await client.disconnect()
        await wait_for(lambda: not server.state.streams)
        await wait_for(lambda: not stream_tasks(stream.id))
        assert stream.core.buffered_ms == 0 and stream.pending_chars == 0
        await wait_for(lambda: len(server.state.access.connections) == 0)
        health = await server.health()
        assert health["streams"] == 0 and health["tasks"] <= baseline


async def test_a_client_that_stops_reading_loses_its_connection_after_the_write_timeout(tone_provider) -> None:
    async with wyoming_server({"tone": tone_provider}, ring_ms=500, write_timeout_s=0.5) as server:
        client = AsyncClient.from_uri(wyoming_uri(server))
        await client.connect()
        try:
            await client.write_event(SynthesizeStart().event())
            await client.write_event(SynthesizeChunk(text=" ".join(["A long stream of words."] * 2000)).event())
            await read_until(client, "audio-chunk")
            (stream,) = server.state.streams
            await wait_for(lambda: stream.backpressured)  # the client reads no more, and stays
            await wait_for(lambda: not server.state.streams, timeout=10)
            await wait_for(lambda: len(server.state.access.connections) == 0)
        finally:
            await client.disconnect()


async def send_raw(sock_writer: asyncio.StreamWriter, header: dict[str, Any], data: bytes = b"", payload: bytes = b"") -> None:
    sock_writer.write(json.dumps(header).encode() + b"\n" + data + payload)
    await sock_writer.drain()


async def test_bad_events_get_wyoming_errors_and_the_connection_stays_usable(tone_provider) -> None:
    async with wyoming_server({"tone": tone_provider}, max_message_bytes=4096) as server:
        async with AsyncClient.from_uri(wyoming_uri(server)) as client:
            await client.write_event(Event(type="no-such-event", data={"x": 1}))
            unknown = Error.from_event((await read_until(client, "error")).events[-1][1])
            # An oversized payload is skipped whole: the events after it are read as usual.
            await client.write_event(Event(type="audio-chunk", data={"rate": 1}, payload=b"\0" * 100_000))
            too_large = Error.from_event((await read_until(client, "error")).events[-1][1])
            await client.write_event(Ping(text="still there?").event())
            pong = (await read_until(client, "pong")).events[-1][1]
            # Wrong data in a running stream: refused, the stream goes on.
            await client.write_event(SynthesizeStart().event())
            await client.write_event(SynthesizeChunk(text="One two three.").event())
            await client.write_event(Event(type="synthesize-chunk", data={"text": 5}))
            await client.write_event(Event(type="synthesize-chunk", data={}))
            await client.write_event(SynthesizeStop().event())
            answer = await read_until(client, "synthesize-stopped")
    assert unknown.code == "bad_message" and "no-such-event" in unknown.text
    assert too_large.code == "message_too_large"
    assert pong.data["text"] == "still there?"
    errors = [Error.from_event(e).code for _, e in answer.events if e.type == "error"]
    assert errors == ["bad_message", "bad_message"]
    assert tone_ms(answer.pcm()) == pytest.approx(tone.expected_duration_ms("One two three."), abs=SEAM_MS)


async def test_a_header_that_is_not_json_ends_that_connection_only(tone_provider) -> None:
    async with wyoming_server({"tone": tone_provider}) as server:
        bound = server.server.config.loaded_app.app.state.wyoming.bound  # type: ignore[union-attr]
        reader, writer = await asyncio.open_connection(bound.host, bound.port)
        writer.write(b"this is not json\n")
        await writer.drain()
        async with asyncio.timeout(TIMEOUT_S):
            header = json.loads(await reader.readline())
            data = json.loads(await reader.readexactly(header["data_length"]))
            assert await reader.read() == b""  # closed by the server
        writer.close()
        assert header["type"] == "error" and data["code"] == "bad_message"
        async with AsyncClient.from_uri(wyoming_uri(server)) as client:
            await client.write_event(Synthesize(text="Still serving.").event())
            answer = await read_until(client, "audio-stop")
    assert tone_ms(answer.pcm()) == pytest.approx(tone.expected_duration_ms("Still serving."), abs=SEAM_MS)


async def test_an_unknown_voice_is_refused_and_the_connection_closed(tone_provider) -> None:
    async with wyoming_server({"tone": tone_provider}) as server, AsyncClient.from_uri(wyoming_uri(server)) as client:
        await client.write_event(Synthesize(text="Hi.", voice=SynthesizeVoice(name="nobody")).event())
        error = Error.from_event((await read_until(client, "error")).events[-1][1])
        async with asyncio.timeout(TIMEOUT_S):
            assert await client.read_event() is None  # its client would wait for audio-stop: closed
        await wait_for(lambda: len(server.state.access.connections) == 0)
    assert error.code == "unknown_voice" and "beep" in error.text


async def test_max_connections_applies_to_wyoming_clients(tone_provider) -> None:
    async with wyoming_server({"tone": tone_provider}, max_connections=1) as server:
        async with AsyncClient.from_uri(wyoming_uri(server)) as first:
            await first.write_event(Describe().event())
            await read_until(first, "info")
            async with AsyncClient.from_uri(wyoming_uri(server)) as second:
                refused = Error.from_event((await read_until(second, "error")).events[-1][1])
        async with AsyncClient.from_uri(wyoming_uri(server)) as third:
            await wait_for(lambda: len(server.state.access.connections) <= 1)
            await third.write_event(Describe().event())
            await read_until(third, "info")
    assert refused.code == "server_busy"


async def test_an_idle_connection_is_closed_after_the_idle_timeout(tone_provider) -> None:
    async with wyoming_server({"tone": tone_provider}, idle_timeout_s=0.3) as server:
        async with AsyncClient.from_uri(wyoming_uri(server)) as client:
            error = Error.from_event((await read_until(client, "error")).events[-1][1])
            async with asyncio.timeout(TIMEOUT_S):
                assert await client.read_event() is None
    assert error.code == "idle_timeout"


async def test_a_unix_socket_listener(tone_provider, tmp_path: Path) -> None:
    path = tmp_path / "wyoming.sock"
    async with wyoming_server({"tone": tone_provider}, wyoming_uri=f"unix://{path}") as server:
        assert wyoming_uri(server) == f"unix://{path}"
        async with AsyncClient.from_uri(f"unix://{path}") as client:
            await client.write_event(Synthesize(text="Over a socket file.").event())
            answer = await read_until(client, "audio-stop")
    assert tone_ms(answer.pcm()) == pytest.approx(tone.expected_duration_ms("Over a socket file."), abs=SEAM_MS)
    assert not path.exists()  # removed with the listener


def test_the_listener_is_off_unless_asked() -> None:
    # Nothing listens on Wyoming's usual port because of this server (the default is off).
    assert tone_settings().wyoming_uri is None
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))


class SixteenKilohertz:
    """A provider at 16 kHz that fails, before any audio, on sentences with "down" in them."""

    name = "openai"
    max_chars: int | None = None
    max_bytes: int | None = None
    voices = (VoiceInfo("alloy", 16000, "en"),)

    async def synthesize(self, text: str, options: VoiceOptions) -> AsyncGenerator[PcmChunk, None]:
        if "down" in text:
            raise ProviderError("openai is unavailable (503)", code="provider_unavailable", retryable=False)
        yield PcmChunk(np.full(3200, 0.2, np.float32), 16000)

    async def aclose(self) -> None:
        return None

    def stats(self) -> dict[str, int]:
        return {}


async def test_a_fallback_at_another_rate_is_resampled_to_the_request_rate(tone_provider) -> None:
    sentences = ["First one here.", "Then down it goes.", "Last one here."]
    loaded = {"openai": SixteenKilohertz(), "tone": tone_provider}
    async with wyoming_server(loaded, providers=("openai", "tone"), provider="openai", fallback=("tone",)) as server:
        async with AsyncClient.from_uri(wyoming_uri(server)) as client:
            await client.write_event(SynthesizeStart(voice=SynthesizeVoice(name="alloy")).event())
            for sentence in sentences:
                await client.write_event(SynthesizeChunk(text=sentence + " ").event())
            await client.write_event(SynthesizeStop().event())
            answer = await read_until(client, "synthesize-stopped")
    rates = {AudioStart.from_event(e).rate for _, e in answer.events if e.type == "audio-start"}
    rates |= {AudioChunk.from_event(e).rate for _, e in answer.events if e.type == "audio-chunk"}
    assert rates == {16000}
    first, fallen_back, last = (len(block) / 2 / 16 for block in answer.blocks())  # ms at 16 kHz
    assert first == pytest.approx(200, abs=SEAM_MS) and last == pytest.approx(200, abs=SEAM_MS)
    # The tone voice's beeps, made at 24 kHz, last as long at 16 kHz.
    assert fallen_back == pytest.approx(tone.expected_duration_ms(sentences[1]), abs=SEAM_MS)


async def test_a_drain_stops_a_wyoming_request_with_shutting_down(tone_provider) -> None:
    async with wyoming_server({"tone": tone_provider}) as server:
        async with AsyncClient.from_uri(wyoming_uri(server)) as client:
            await client.write_event(SynthesizeStart().event())
            await client.write_event(SynthesizeChunk(text="Waiting for the rest").event())
            await wait_for(lambda: len(server.state.streams) == 1)
            assert await server.state.admission.drain(0) == 1
            error = Error.from_event((await read_until(client, "error")).events[-1][1])
            async with asyncio.timeout(TIMEOUT_S):
                assert await client.read_event() is None
        await wait_for(lambda: not server.state.streams)
    assert error.code == "shutting_down"


async def test_a_connection_quiet_after_its_request_is_closed_after_the_idle_timeout(tone_provider) -> None:
    async with wyoming_server({"tone": tone_provider}, idle_timeout_s=0.5) as server:
        async with AsyncClient.from_uri(wyoming_uri(server)) as client:
            await client.write_event(Synthesize(text="One two.").event())
            answer = await read_until(client, "audio-stop")
            error = Error.from_event((await read_until(client, "error")).events[-1][1])
            async with asyncio.timeout(TIMEOUT_S):
                assert await client.read_event() is None
    assert tone_ms(answer.pcm()) > 0 and error.code == "idle_timeout"
