"""`/v1/speak`, Deepgram's TTS API, against a real server on loopback: a plain WebSocket client
(Speak/Flush/Clear/Close, audio decoded to its length), bad input in Deepgram's shape, the REST
call, Deepgram's `Token` auth, and one real Piper voice."""

from __future__ import annotations

import io
import json
from typing import Any

import av
import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from stream_server.providers import Provider, tone
from stream_server.providers.tone import ToneProvider
from stream_server.transports.compat.deepgram import protocol

from .conftest import RunningServer, run_server, tone_settings
from .helpers import pcm_samples, rms

MODEL = "aura-2-thalia-en"
FIRST, SECOND = "Hello there, this is the first sentence.", "And here is a second one"
# Each segment's audio is the tone's, give or take the pipeline's last partial frame.
PER_SEGMENT_MS = 3.0


def speak_url(server: RunningServer, **query: str) -> str:
    params = {"model": MODEL, "encoding": "linear16", "sample_rate": "24000", **query}
    return f"ws://127.0.0.1:{server.port}/v1/speak?" + "&".join(f"{k}={v}" for k, v in params.items())


async def say(ws: ClientConnection, kind: str, **fields: Any) -> None:
    await ws.send(json.dumps({"type": kind, **fields}))


async def until(ws: ClientConnection, kind: str) -> tuple[list[bytes], list[dict[str, Any]]]:
    """Audio and messages up to and including the first message of type `kind`."""
    audio: list[bytes] = []
    messages: list[dict[str, Any]] = []
    while True:
        data = await ws.recv()
        if isinstance(data, bytes):
            audio.append(data)
            continue
        messages.append(json.loads(data))
        if messages[-1]["type"] == kind:
            return audio, messages


async def rest_of(ws: ClientConnection) -> tuple[list[bytes], list[dict[str, Any]]]:
    audio: list[bytes] = []
    messages: list[dict[str, Any]] = []
    try:
        async for data in ws:
            if isinstance(data, bytes):
                audio.append(data)
            else:
                messages.append(json.loads(data))
    except ConnectionClosedError:
        pass  # closed with an error code: the caller checks `ws.close_code`
    return audio, messages


def ms_of(audio: list[bytes], rate: int = 24000) -> float:
    return len(pcm_samples(audio)) / rate * 1000


async def test_speak_flush_close_streams_audio_of_the_right_length(tone_server: RunningServer) -> None:
    async with websockets.connect(speak_url(tone_server)) as ws:
        _, (metadata,) = await until(ws, "Metadata")
        assert metadata["model_name"] == MODEL and metadata["request_id"]
        # A sentence end is spoken before any Flush: audio comes while text is still pending.
        await say(ws, "Speak", text=FIRST + " And here")
        first, _ = await until_audio(ws)
        await say(ws, "Speak", text=" is a second one")
        await say(ws, "Flush")
        audio, messages = await until(ws, "Flushed")
        assert messages == [{"type": "Flushed", "sequence_id": 0}]
        expected = tone.expected_duration_ms(FIRST) + tone.expected_duration_ms(SECOND)
        assert ms_of(first + audio) == pytest.approx(expected, abs=2 * PER_SEGMENT_MS)
        assert rms(pcm_samples(first + audio)) > 0.05
        await say(ws, "Flush")  # nothing new: flushed at once
        assert await until(ws, "Flushed") == ([], [{"type": "Flushed", "sequence_id": 1}])
        await say(ws, "Speak", text="Three more words")
        await say(ws, "Close")
        audio, messages = await rest_of(ws)
        assert messages == []
        assert ms_of(audio) == pytest.approx(tone.expected_duration_ms("Three more words"), abs=PER_SEGMENT_MS)
    assert ws.close_code == 1000


async def until_audio(ws: ClientConnection) -> tuple[list[bytes], list[dict[str, Any]]]:
    """Up to the first audio frame (included)."""
    messages: list[dict[str, Any]] = []
    while True:
        data = await ws.recv()
        if isinstance(data, bytes):
            return [data], messages
        messages.append(json.loads(data))


@pytest.mark.parametrize(("encoding", "sample_rate", "codec"), [("mulaw", 8000, "pcm_mulaw"), ("alaw", 8000, "pcm_alaw")])
async def test_telephony_encodings_decode_to_the_right_length(
    tone_server: RunningServer, encoding: str, sample_rate: int, codec: str
) -> None:
    async with websockets.connect(speak_url(tone_server, encoding=encoding, sample_rate=str(sample_rate))) as ws:
        await say(ws, "Speak", text=FIRST)
        await say(ws, "Flush")
        audio, _ = await until(ws, "Flushed")
    decoder = av.CodecContext.create(codec, "r")
    decoder.sample_rate, decoder.layout = sample_rate, "mono"
    samples = sum(frame.samples for frame in decoder.decode(av.Packet(b"".join(audio))))
    assert samples / sample_rate * 1000 == pytest.approx(tone.expected_duration_ms(FIRST), abs=PER_SEGMENT_MS)


async def test_clear_stops_the_audio_at_cleared_and_the_connection_goes_on(tone_provider: ToneProvider) -> None:
    # Paced to real time, so that audio is still queued when the Clear arrives.
    async with run_server(tone_settings(max_lead_ms=100), {"tone": tone_provider}) as server:
        async with websockets.connect(speak_url(server)) as ws:
            long_text = " ".join(["word"] * 200) + "."
            await say(ws, "Speak", text=long_text)
            await say(ws, "Flush")
            await until_audio(ws)
            await say(ws, "Clear")
            before, messages = await until(ws, "Cleared")
            assert messages[-1] == {"type": "Cleared", "sequence_id": 0}
            assert "Flushed" not in [m["type"] for m in messages]  # the cleared flush never completes
            # After Cleared, only the new text's audio: its length says nothing old slipped through.
            await say(ws, "Speak", text="Only this now.")
            await say(ws, "Flush")
            after, messages = await until(ws, "Flushed")
            assert messages == [{"type": "Flushed", "sequence_id": 1}]
            assert ms_of(after) == pytest.approx(tone.expected_duration_ms("Only this now."), abs=PER_SEGMENT_MS)
            assert ms_of(before) < tone.expected_duration_ms(long_text) / 2


@pytest.mark.parametrize(
    "message",
    [
        {"type": "Speak", "text": 42},
        {"type": "Speak", "text": "hi", "speed": 2},
        {"type": "Whisper", "text": "hi"},
    ],
)
async def test_a_message_it_cannot_take_gets_a_warning_and_changes_nothing(
    tone_server: RunningServer, message: dict[str, Any]
) -> None:
    async with websockets.connect(speak_url(tone_server)) as ws:
        await ws.send(json.dumps(message))
        _, messages = await until(ws, "Warning")
        assert messages[-1]["code"] == "bad_message" and messages[-1]["description"]
        await say(ws, "Speak", text="Still here.")
        await say(ws, "Close")
        audio, _ = await rest_of(ws)
    assert ws.close_code == 1000
    assert ms_of(audio) == pytest.approx(tone.expected_duration_ms("Still here."), abs=PER_SEGMENT_MS)


async def test_text_after_close_is_refused_with_a_warning(tone_provider: ToneProvider) -> None:
    async with run_server(tone_settings(max_lead_ms=100), {"tone": tone_provider}) as server:
        async with websockets.connect(speak_url(server)) as ws:
            await say(ws, "Speak", text=" ".join(["word"] * 20) + ".")
            await say(ws, "Close")
            await say(ws, "Speak", text="Too late.")
            _, messages = await until(ws, "Warning")
            assert messages[-1]["code"] == "stream_ended"
            audio, _ = await rest_of(ws)
        assert ws.close_code == 1000


@pytest.mark.parametrize(
    ("frame", "code", "reason"),
    [("Speak hello", 1008, "DATA-0000"), (b"\x00\x01", 1003, "MESSAGE-0000"), ("x" * 2000, 1009, "BIG-0000")],
)
async def test_frames_outside_the_protocol_close_with_deepgrams_codes(
    tone_provider: ToneProvider, frame: str | bytes, code: int, reason: str
) -> None:
    async with run_server(tone_settings(max_message_bytes=1024), {"tone": tone_provider}) as server:
        async with websockets.connect(speak_url(server)) as ws:
            await ws.send(frame)
            _, messages = await rest_of(ws)
            assert ws.close_code == code and ws.close_reason.startswith(reason + ": ")
            assert [m["type"] for m in messages] == ["Metadata", "Warning"]  # the why, in JSON too
        # Nothing else was affected: the next connection works.
        async with websockets.connect(speak_url(server)) as ws:
            await say(ws, "Speak", text="Fine.")
            await say(ws, "Close")
            audio, _ = await rest_of(ws)
            assert ms_of(audio) > 0


@pytest.mark.parametrize(("query", "named"), [({"model": "nova-3"}, "nova-3"), ({"encoding": "mp3"}, "encoding")])
async def test_a_url_it_cannot_serve_is_refused_at_the_handshake(
    tone_server: RunningServer, query: dict[str, str], named: str
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(speak_url(tone_server, **query)):
            pass
    response = refused.value.response
    assert response.status_code == 400 and named in response.headers["dg-error"]
    body = json.loads(response.body)
    assert body["err_code"] == "INVALID_QUERY_PARAMETER" and named in body["err_msg"] and body["request_id"]


async def test_token_and_bearer_keys_both_open_it(tone_provider: ToneProvider) -> None:
    async with run_server(tone_settings(api_keys=("secret-key",)), {"tone": tone_provider}) as server:
        for scheme in ("Token", "Bearer"):
            headers = {"Authorization": f"{scheme} secret-key"}
            async with websockets.connect(speak_url(server), additional_headers=headers) as ws:
                await until(ws, "Metadata")
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(speak_url(server), additional_headers={"Authorization": "Token wrong"}):
                pass
        assert refused.value.response.status_code == 401
        async with httpx.AsyncClient() as client:
            # Deepgram's scheme is taken on its own API only.
            response = await client.get(f"{server.http_url}/v1/tts/sessions", headers={"Authorization": "Token secret-key"})
            assert response.status_code == 401


@pytest.mark.parametrize(
    ("query", "fmt", "rate"),
    [
        ({"encoding": "linear16", "container": "none", "sample_rate": "16000"}, "s16le", 16000),
        ({"encoding": "linear16"}, None, 24000),
        ({"encoding": "mp3"}, None, 22050),
        ({"encoding": "opus"}, None, 48000),
        ({"encoding": "mulaw", "container": "none"}, "mulaw", 8000),
    ],
)
async def test_rest_speak_streams_each_encoding(
    tone_server: RunningServer, query: dict[str, str], fmt: str | None, rate: int
) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{tone_server.http_url}/v1/speak", params={"model": MODEL, **query}, json={"text": f"{FIRST} {SECOND}."}
        )
    assert response.status_code == 200, response.text
    assert response.headers["dg-model-name"] == MODEL and response.headers["dg-request-id"]
    options = {"sample_rate": str(rate), "ch_layout": "mono"} if fmt else {}
    with av.open(io.BytesIO(response.content), format=fmt, options=options) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        assert (stream.rate or rate) == rate
    expected = tone.expected_duration_ms(FIRST) + tone.expected_duration_ms(SECOND + ".")
    assert expected <= samples / rate * 1000 + 2 * PER_SEGMENT_MS <= expected + 600  # codecs add padding


@pytest.mark.parametrize(
    ("query", "body", "status", "code"),
    [
        ({"model": "nova-3"}, {"text": "Hi."}, 400, "INVALID_QUERY_PARAMETER"),
        ({}, {"text": "Hi.", "voice": "x"}, 400, "bad_message"),
        ({}, {"text": 5}, 400, "bad_message"),
        ({}, {"text": "   "}, 400, "empty_input"),
        ({}, {"text": "x" * 2001}, 400, "bad_message"),
    ],
)
async def test_rest_errors_come_in_deepgrams_shape(
    tone_server: RunningServer, query: dict[str, str], body: dict[str, Any], status: int, code: str
) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{tone_server.http_url}/v1/speak", params=query, json=body)
    assert response.status_code == status
    error = response.json()
    assert error["err_code"] == code and error["err_msg"] and error["request_id"] == response.headers["dg-request-id"]


async def test_a_mapped_model_speaks_with_its_voice_and_piper_is_heard(piper_provider: Provider) -> None:
    settings = tone_settings(
        providers=("piper",), provider="piper", deepgram_voice_map=(f"{MODEL}=piper:{piper_provider.voices[0].id}",)
    )
    async with run_server(settings, {"piper": piper_provider}) as server:
        async with websockets.connect(speak_url(server, sample_rate="22050")) as ws:
            _, (metadata,) = await until(ws, "Metadata")
            await say(ws, "Speak", text="The quick brown fox jumps over the lazy dog.")
            await say(ws, "Flush")
            audio, _ = await until(ws, "Flushed")
    samples = pcm_samples(audio)
    assert 1.0 < len(samples) / 22050 < 6.0 and rms(samples) > 0.02
    # The mapped voice spoke: Metadata's model_uuid names it.
    voice = piper_provider.voices[0].id
    assert metadata["model_uuid"] == json.loads(protocol.metadata("r", MODEL, "piper", voice))["model_uuid"]
