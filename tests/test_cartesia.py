"""`/tts/websocket`, `/tts/bytes` and `/tts/sse`, Cartesia's TTS API, against a real server on
loopback: a plain WebSocket client with several contexts (continue, flush, cancel, done), audio
decoded to its length, bad input in Cartesia's shape, the context cap, X-API-Key auth, and the
HTTP calls."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import av
import httpx
import numpy as np
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from stream_server.providers import tone
from stream_server.providers.tone import ToneProvider

from .conftest import RunningServer, run_server, tone_settings

FIRST, SECOND = "Hello there, this is the first sentence.", "And here is a second one."
LONG = " ".join(["word"] * 150) + "."
RATE = 24000
PER_SEGMENT_MS = 3.0
FORMAT = {"container": "raw", "encoding": "pcm_s16le", "sample_rate": RATE}
CARTESIA_VOICE = "a0e99841-438c-4a64-b679-ae501e7d6091"


def url(server: RunningServer, query: str = "cartesia_version=2025-04-16") -> str:
    return f"ws://127.0.0.1:{server.port}/tts/websocket?{query}"


def generation(context_id: str | None, transcript: str, **fields: Any) -> str:
    message: dict[str, Any] = {
        "model_id": "sonic-2", "voice": {"mode": "id", "id": CARTESIA_VOICE}, "output_format": FORMAT,
        "transcript": transcript, "continue": True, **fields,
    }  # fmt: skip
    if context_id is not None:
        message["context_id"] = context_id
    return json.dumps(message)


class Received:
    """Everything a connection got, by context."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def audio(self, context_id: str) -> bytes:
        return b"".join(
            base64.b64decode(m["data"]) for m in self.messages if m["type"] == "chunk" and m["context_id"] == context_id
        )

    def kinds(self, context_id: str | None) -> list[str]:
        return [m["type"] for m in self.messages if m.get("context_id") == context_id]


async def until(ws: ClientConnection, got: Received, kind: str, context_id: str | None) -> dict[str, Any]:
    while True:
        message = json.loads(await ws.recv())
        got.messages.append(message)
        if message["type"] == kind and message.get("context_id") == context_id:
            return message


def ms_of(audio: bytes, bytes_per_sample: int = 2, rate: int = RATE) -> float:
    return len(audio) / bytes_per_sample / rate * 1000


async def test_a_context_streams_sentences_as_they_end_then_done(tone_server: RunningServer) -> None:
    got = Received()
    async with websockets.connect(url(tone_server)) as ws:
        await ws.send(generation("c1", FIRST + " And here"))
        # The first sentence is spoken before the rest of the context's text exists.
        await until(ws, got, "chunk", "c1")
        await ws.send(generation("c1", " is a second one.", flush=True))
        flush_done = await until(ws, got, "flush_done", "c1")
        assert flush_done["flush_id"] == 1 and flush_done["flush_done"] is True
        await ws.send(generation("c1", "", **{"continue": False}))
        done = await until(ws, got, "done", "c1")
        assert done["done"] is True and done["status_code"] == 200
    expected = tone.expected_duration_ms(FIRST) + tone.expected_duration_ms(SECOND)
    assert ms_of(got.audio("c1")) == pytest.approx(expected, abs=2 * PER_SEGMENT_MS)
    chunks = [m for m in got.messages if m["type"] == "chunk"]
    assert all(c["status_code"] == 206 and c["done"] is False and c["flush_id"] == 1 for c in chunks)
    # No timings from any voice: none are sent, even when asked for.
    assert "timestamps" not in got.kinds("c1")


async def test_two_contexts_on_one_socket_cancel_one_the_other_plays_on(tone_server: RunningServer) -> None:
    got = Received()
    async with websockets.connect(url(tone_server)) as ws:
        await ws.send(generation("long", LONG))
        await until(ws, got, "chunk", "long")
        await ws.send(generation("short", FIRST, **{"continue": False}))
        await ws.send(json.dumps({"context_id": "long", "cancel": True}))
        # Cartesia acknowledges no cancel: the answer to a bad message sent after it marks where
        # the server had taken it.
        await ws.send("{")
        await until(ws, got, "error", None)
        mark = len(got.messages)
        await until(ws, got, "done", "short")
        # A frame already being written when the cancel came is the last of the context.
        assert sum(m.get("context_id") == "long" for m in got.messages[mark:]) <= 1
        assert "done" not in got.kinds("long")
        # The id is free again: a new context under it is a new stream.
        await ws.send(generation("long", SECOND, **{"continue": False}))
        before = len(got.audio("long"))
        await until(ws, got, "done", "long")
    assert ms_of(got.audio("short")) == pytest.approx(tone.expected_duration_ms(FIRST), abs=PER_SEGMENT_MS)
    assert ms_of(got.audio("long")[before:]) == pytest.approx(tone.expected_duration_ms(SECOND), abs=2 * PER_SEGMENT_MS)
    assert ms_of(got.audio("long")[:before]) < tone.expected_duration_ms(LONG)


async def test_formats_float_and_mulaw(tone_server: RunningServer) -> None:
    got = Received()
    async with websockets.connect(url(tone_server)) as ws:
        f32 = {"container": "raw", "encoding": "pcm_f32le", "sample_rate": 16000}
        mulaw = {"container": "raw", "encoding": "pcm_mulaw", "sample_rate": 8000}
        await ws.send(generation("f", FIRST, output_format=f32, **{"continue": False}))
        await ws.send(generation("m", FIRST, output_format=mulaw, **{"continue": False}))
        await until(ws, got, "done", "f")
        await until(ws, got, "done", "m") if "done" not in got.kinds("m") else None
    expected = tone.expected_duration_ms(FIRST)
    floats = np.frombuffer(got.audio("f"), dtype="<f4")
    assert len(floats) / 16 == pytest.approx(expected, abs=PER_SEGMENT_MS)
    assert 0.05 < float(np.abs(floats).max()) <= 1.0
    assert ms_of(got.audio("m"), bytes_per_sample=1, rate=8000) == pytest.approx(expected, abs=PER_SEGMENT_MS)


async def test_bad_messages_get_errors_and_touch_no_other_context(tone_server: RunningServer) -> None:
    got = Received()
    async with websockets.connect(url(tone_server)) as ws:
        await ws.send(generation("good", LONG))
        await until(ws, got, "chunk", "good")
        await ws.send("not json")
        assert (await until(ws, got, "error", None))["error_code"] == "invalid_json"
        await ws.send(json.dumps({"context_id": "x", "transcript": "hi", "surprise": 1}))
        error = await until(ws, got, "error", None)
        assert error["error_code"] == "invalid_request" and "surprise" in error["message"]
        await ws.send(generation("bad", "Hi.", output_format={**FORMAT, "encoding": "mp3"}))
        assert (await until(ws, got, "error", "bad"))["error_code"] == "unsupported_encoding"
        await ws.send(generation("bad", "Hi.", voice={"mode": "id", "id": "no-such-voice"}))
        error = await until(ws, got, "error", "bad")
        assert error["status_code"] == 404 and error["title"] and error["error"]
        await ws.send(generation("bad", "Hi.", output_format={**FORMAT, "sample_rate": 12345}))
        assert (await until(ws, got, "error", "bad"))["error_code"] == "unsupported_sample_rate"
        await ws.send(b"\x00binary")
        await until(ws, got, "error", None)
        await ws.send(json.dumps({"context_id": "x", "transcript": "a" * 70_000}))
        assert (await until(ws, got, "error", None))["error_code"] == "message_too_large"
        # The good context is still speaking, whole.
        await ws.send(generation("good", "", **{"continue": False}))
        await until(ws, got, "done", "good")
    # LONG is cut into several segments, each within a few ms of the tone's length.
    assert ms_of(got.audio("good")) == pytest.approx(tone.expected_duration_ms(LONG), abs=4 * PER_SEGMENT_MS)


async def test_past_the_context_cap_a_new_context_is_refused_and_the_socket_stays(tone_provider: ToneProvider) -> None:
    got = Received()
    async with run_server(tone_settings(cartesia_max_contexts=2), {"tone": tone_provider}) as server:
        async with websockets.connect(url(server)) as ws:
            await ws.send(generation("a", "One"))
            await ws.send(generation("b", "Two"))
            await ws.send(generation("c", "Three"))
            error = await until(ws, got, "error", "c")
            assert error["error_code"] == "too_many_contexts" and error["status_code"] == 429
            await ws.send(json.dumps({"context_id": "a", "cancel": True}))
            await ws.send(generation("c", FIRST, **{"continue": False}))
            await until(ws, got, "done", "c")
    assert ms_of(got.audio("c")) == pytest.approx(tone.expected_duration_ms(FIRST), abs=PER_SEGMENT_MS)


async def test_speak_each_transcript_at_once_with_no_buffer_delay(tone_server: RunningServer) -> None:
    got = Received()
    async with websockets.connect(url(tone_server)) as ws:
        # No sentence end: with max_buffer_delay_ms 0 the transcript is spoken as sent.
        await ws.send(generation("c", "Hello there friend", max_buffer_delay_ms=0))
        await until(ws, got, "flush_done", "c")
    assert ms_of(got.audio("c")) == pytest.approx(tone.expected_duration_ms("Hello there friend"), abs=PER_SEGMENT_MS)


async def test_keys_by_x_api_key_header(tone_provider: ToneProvider) -> None:
    async with run_server(tone_settings(api_keys=("k-secret",)), {"tone": tone_provider}) as server:
        got = Received()
        async with websockets.connect(url(server), additional_headers={"X-API-Key": "k-secret"}) as ws:
            await ws.send(generation("c", FIRST, **{"continue": False}))
            await until(ws, got, "done", "c")
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(url(server), additional_headers={"X-API-Key": "wrong"}):
                pass
        assert refused.value.response.status_code == 401
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
            body = json.loads(generation(None, FIRST))
            answer = await http.post("/tts/bytes", json=body, headers={"Authorization": "Bearer k-secret"})
            assert answer.status_code == 200


async def test_unknown_query_parameter_is_refused_at_the_handshake(tone_server: RunningServer) -> None:
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(url(tone_server, "cartesia_version=x&bogus=1")):
            pass
    assert refused.value.response.status_code == 400
    assert json.loads(refused.value.response.body)["error_code"] == "invalid_query_parameter"


async def test_bytes_streams_raw_wav_and_mp3(tone_server: RunningServer) -> None:
    expected = tone.expected_duration_ms(FIRST + " " + SECOND)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{tone_server.port}") as http:
        body = json.loads(generation(None, f"{FIRST} {SECOND}"))
        raw = await http.post("/tts/bytes", json=body)
        assert raw.status_code == 200
        assert ms_of(raw.content) == pytest.approx(expected, abs=2 * PER_SEGMENT_MS)
        for container in ("wav", "mp3"):
            fmt = {"container": container, "encoding": "pcm_s16le", "sample_rate": RATE}
            answer = await http.post("/tts/bytes", json={**body, "output_format": fmt})
            assert answer.status_code == 200
            with av.open(io.BytesIO(answer.content)) as audio:
                assert audio.streams.audio[0].rate == RATE
                samples = sum(frame.samples for frame in audio.decode(audio=0))
            assert expected <= samples / RATE * 1000 + 2 * PER_SEGMENT_MS <= expected + 600  # codecs add padding
        bad = await http.post("/tts/bytes", json={**body, "voice": {"mode": "embedding", "embedding": [0.1]}})
        assert bad.status_code == 400 and bad.json()["error_code"] == "unsupported_voice_mode"
        unknown = await http.post("/tts/bytes", json={**body, "model_id": "gpt-9"})
        assert unknown.status_code == 400 and unknown.json()["error_code"] == "model_not_found"


async def test_sse_sends_chunks_then_done(tone_server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{tone_server.port}") as http:
        body = {**json.loads(generation("sse-1", FIRST)), "add_timestamps": True}
        answer = await http.post("/tts/sse", json=body)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/event-stream")
    events = [block.split("\n") for block in answer.text.strip().split("\n\n")]
    names = [lines[0].removeprefix("event: ") for lines in events]
    messages = [json.loads(lines[1].removeprefix("data: ")) for lines in events]
    assert set(names[:-1]) == {"chunk", "timestamps"} and names[-1] == "done"
    assert messages[-1] == {"type": "done", "done": True, "status_code": 200, "context_id": "sse-1"}
    audio = b"".join(base64.b64decode(m["data"]) for m in messages[:-1] if m["type"] == "chunk")
    assert ms_of(audio) == pytest.approx(tone.expected_duration_ms(FIRST), abs=PER_SEGMENT_MS)
    # add_timestamps: each word in seconds from the first audio, before the chunk holding it.
    stamps = [m["word_timestamps"] for m in messages if m["type"] == "timestamps"]
    assert [w for s in stamps for w in s["words"]] == FIRST.split()
    starts = [t for s in stamps for t in s["start"]]
    assert starts == pytest.approx([0.08 * i for i in range(len(FIRST.split()))], abs=0.001)
    assert all(m["type"] == "timestamps" for m, name in zip(messages, names, strict=True) if name == "timestamps")
