"""`POST /v1/audio/speech`, driven by the official `openai` package and by plain httpx."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections.abc import AsyncGenerator

import av
import httpx
import numpy as np
import pytest
from openai import AsyncOpenAI, BadRequestError

from stream_server.providers import tone
from stream_server.providers.base import PcmChunk, VoiceOptions
from stream_server.providers.tone import ToneProvider

from .conftest import RunningServer, run_server, tone_settings
from .helpers import rms, wait_for

TEXT = "Hello there, this is the first sentence. And here is a second one!"
TONE_MS = tone.expected_duration_ms("Hello there, this is the first sentence.") + tone.expected_duration_ms(
    "And here is a second one!"
)


def client(server: RunningServer) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=f"{server.http_url}/v1", api_key="unused", max_retries=0)


def decoded_ms(data: bytes, fmt: str | None = None, rate: int = 24000) -> float:
    options = {"sample_rate": str(rate), "ch_layout": "mono"} if fmt == "s16le" else {}
    with av.open(io.BytesIO(data), format=fmt, options=options) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return samples / (stream.rate or rate) * 1000


@pytest.mark.parametrize("response_format", ["mp3", "opus", "aac", "flac", "wav", "pcm"])
async def test_the_openai_package_streams_every_format(tone_server: RunningServer, response_format: str) -> None:
    async with client(tone_server).audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=TEXT, response_format=response_format
    ) as response:
        assert response.status_code == 200
        chunks = [chunk async for chunk in response.iter_bytes()]
    data = b"".join(chunks)
    duration = decoded_ms(data, "s16le" if response_format == "pcm" else None)
    assert TONE_MS <= duration + 2 <= TONE_MS + 600  # codecs add padding and delay
    if response_format == "pcm":
        assert rms(np.frombuffer(data, "<i2") / 32768) > 0.05


async def test_the_openai_package_without_streaming(tone_server: RunningServer) -> None:
    response = await client(tone_server).audio.speech.create(
        model="tts-1", voice="alloy", input=TEXT, response_format="wav", speed=2.0
    )
    data = response.read()
    assert data.startswith(b"RIFF")
    assert decoded_ms(data) == pytest.approx(TONE_MS / 2, abs=60)


class GatedTone(ToneProvider):
    """Tone whose segments after the first wait until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.calls = 0

    async def synthesize(self, text: str, options: VoiceOptions) -> AsyncGenerator[PcmChunk, None]:
        self.calls += 1
        if self.calls > 1:
            await self.gate.wait()
        async for chunk in super().synthesize(text, options):
            yield chunk


async def test_audio_starts_before_the_whole_input_is_synthesized() -> None:
    provider = GatedTone()
    async with run_server(tone_settings(), {"tone": provider}) as server:
        async with httpx.AsyncClient(base_url=server.http_url) as http:
            body = {"model": "tts-1", "voice": "alloy", "input": "First one here. Second one waits.", "response_format": "pcm"}
            async with http.stream("POST", "/v1/audio/speech", json=body) as response:
                chunks = response.aiter_bytes()
                first = await anext(chunks)  # arrives while the second sentence cannot be synthesized
                assert first and not provider.gate.is_set()
                provider.gate.set()
                rest = b"".join([chunk async for chunk in chunks])
    expected = tone.expected_duration_ms("First one here.") + tone.expected_duration_ms("Second one waits.")
    assert len(first + rest) / 48 == pytest.approx(expected, abs=3)


async def test_sse_stream_format(tone_server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=tone_server.http_url) as http:
        body = {"model": "tts-1", "voice": "alloy", "input": TEXT, "response_format": "pcm", "stream_format": "sse"}
        async with http.stream("POST", "/v1/audio/speech", json=body) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            events = [json.loads(line[6:]) async for line in response.aiter_lines() if line.startswith("data: ")]
    deltas = [e for e in events if e["type"] == "speech.audio.delta"]
    assert events[-1]["type"] == "speech.audio.done" and events[-1]["usage"]["input_tokens"] == len(TEXT.split())
    pcm = b"".join(base64.b64decode(e["audio"]) for e in deltas)
    assert len(pcm) / 48 == pytest.approx(TONE_MS, abs=3)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"model": "tts-1", "voice": "alloy"}, "input"),
        ({"model": "tts-1", "voice": "alloy", "input": ""}, "$.input"),
        ({"model": "tts-1", "voice": "alloy", "input": "x" * 4097}, "$.input"),
        ({"model": "tts-1", "voice": "alloy", "input": "hi", "response_format": "ogg"}, "$.response_format"),
        ({"model": "tts-1", "voice": "alloy", "input": "hi", "speed": 9}, "$.speed"),
        ({"model": "tts-1", "voice": "alloy", "input": "hi", "colour": "blue"}, "colour"),
    ],
)
async def test_bad_requests_get_a_json_error(tone_server: RunningServer, body: dict, fragment: str) -> None:
    async with httpx.AsyncClient(base_url=tone_server.http_url) as http:
        response = await http.post("/v1/audio/speech", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "bad_message" and fragment in error["message"]


async def test_the_openai_package_sees_the_error(tone_server: RunningServer) -> None:
    with pytest.raises(BadRequestError) as caught:
        await client(tone_server).audio.speech.create(model="tts-1", voice="alloy", input="hi", speed=10)
    assert caught.value.status_code == 400


async def test_a_provider_name_as_model_and_its_voice(tone_server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=tone_server.http_url) as http:
        body = {"model": "tone", "voice": "low", "input": "Beep beep.", "response_format": "pcm"}
        response = await http.post("/v1/audio/speech", json=body)
    assert response.status_code == 200
    assert len(response.content) / 48 == pytest.approx(tone.expected_duration_ms("Beep beep."), abs=3)


@pytest.mark.parametrize("stream_format", ["audio", "sse"])
async def test_a_client_that_drops_the_request_leaves_no_stream(tone_server: RunningServer, stream_format: str) -> None:
    body = json.dumps(
        {"model": "tone", "voice": "beep", "input": "Hello there friend. " * 150, "response_format": "wav",
         "stream_format": stream_format}
    ).encode()  # fmt: skip
    reader, writer = await asyncio.open_connection("127.0.0.1", tone_server.port)
    writer.write(
        b"POST /v1/audio/speech HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (len(body), body)
    )
    await writer.drain()
    assert (await reader.read(4096)).startswith(b"HTTP/1.1 200")
    writer.transport.abort()  # gone mid-answer
    await wait_for(lambda: not tone_server.state.streams)
    assert tone_server.state.metrics.active_streams.labels("speech")._value.get() == 0


@pytest.mark.parametrize("text", ["   ", " \n\t \n\n "])
async def test_input_with_nothing_to_speak_is_refused_before_the_status_line(
    tone_server: RunningServer, text: str
) -> None:
    async with httpx.AsyncClient(base_url=tone_server.http_url) as http:
        response = await http.post("/v1/audio/speech", json={"model": "tts-1", "voice": "alloy", "input": text})
    assert response.status_code == 400 and response.json()["error"]["code"] == "empty_input"
    assert not tone_server.state.streams


async def test_an_option_in_the_query_string_is_refused_not_ignored(tone_server: RunningServer) -> None:
    body = {"model": "tts-1", "voice": "alloy", "input": "Hello there."}
    async with httpx.AsyncClient(base_url=tone_server.http_url) as http:
        response = await http.post("/v1/audio/speech?response_format=opus&speed=2", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "bad_message"
    assert "'response_format'" in error["message"] and "'speed'" in error["message"]


async def test_pcm_is_audio_pcm_as_openai_answers_it(tone_server: RunningServer) -> None:
    body = {"model": "tts-1", "voice": "alloy", "input": "Hello there.", "response_format": "pcm"}
    async with httpx.AsyncClient(base_url=tone_server.http_url) as http:
        speech = await http.post("/v1/audio/speech", json=body)
        formats = (await http.get("/v1/formats")).json()["formats"]
    assert speech.status_code == 200 and speech.headers["content-type"] == "audio/pcm"
    # The server's own protocol keeps its documented name.
    assert next(f["mime"] for f in formats if f["name"] == "pcm") == "audio/L16"
