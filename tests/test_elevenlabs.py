"""ElevenLabs' `stream-input`, `multi-stream-input` and `POST …/stream` against a real server on
loopback: contexts on one socket, barge-in of one context, bad input in ElevenLabs' shape that
touches no other context, the `xi-api-key` header and first-message key."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from stream_server.providers import tone
from stream_server.providers.tone import ToneProvider

from .conftest import RunningServer, run_server, tone_settings
from .helpers import pcm_samples

FIRST, SECOND = "Hello there, this is the first sentence.", "And here is a second one."
LONG = " ".join(["word"] * 150) + "."
PER_SEGMENT_MS = 3.0
RATE = 24000


def url(server: RunningServer, kind: str = "multi-stream-input", voice: str = "beep", **query: str) -> str:
    params = {"model_id": "eleven_flash_v2_5", "output_format": f"pcm_{RATE}", **query}
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"ws://127.0.0.1:{server.port}/v1/text-to-speech/{voice}/{kind}?{query}"


async def say(ws: ClientConnection, **message: Any) -> None:
    await ws.send(json.dumps(message))


Audio = dict[str | None, list[bytes]]


async def until_final(ws: ClientConnection, context: str | None) -> tuple[Audio, list[dict[str, Any]]]:
    """Audio by context, and the other messages, up to `context`'s `isFinal`."""
    audio: dict[str | None, list[bytes]] = {}
    messages: list[dict[str, Any]] = []
    while True:
        message = json.loads(await ws.recv())
        if "audio" in message:
            audio.setdefault(message.get("contextId"), []).append(base64.b64decode(message["audio"]))
            continue
        messages.append(message)
        if message.get("isFinal") and message.get("contextId") == context:
            return audio, messages


def ms_of(chunks: list[bytes]) -> float:
    return len(pcm_samples(chunks)) / RATE * 1000


async def test_two_contexts_on_one_socket_each_get_their_own_audio(tone_server: RunningServer) -> None:
    async with websockets.connect(url(tone_server)) as ws:
        await say(ws, text=" ", context_id="a", voice_settings={"speed": 1.0})
        await say(ws, text=" ", context_id="b")
        await say(ws, text=FIRST + " ", context_id="a", flush=True)
        await say(ws, text=SECOND + " ", context_id="b", flush=True)
        await say(ws, context_id="a", close_context=True)
        await say(ws, context_id="b", close_context=True)
        audio, messages = await until_final(ws, "a")
        more, rest = await until_final(ws, "b") if {"isFinal": True, "contextId": "b"} not in messages else ({}, [])
        for context, chunks in more.items():
            audio.setdefault(context, []).extend(chunks)
        assert ms_of(audio["a"]) == pytest.approx(tone.expected_duration_ms(FIRST), abs=PER_SEGMENT_MS)
        assert ms_of(audio["b"]) == pytest.approx(tone.expected_duration_ms(SECOND), abs=PER_SEGMENT_MS)
        assert not [m for m in messages + rest if "error" in m]


async def test_speed_from_voice_settings(tone_server: RunningServer) -> None:
    async with websockets.connect(url(tone_server)) as ws:
        await say(ws, text=" ", context_id="a", voice_settings={"speed": 1.2})
        await say(ws, text=FIRST, context_id="a", flush=True)
        await say(ws, context_id="a", close_context=True)
        audio, _ = await until_final(ws, "a")
    assert ms_of(audio["a"]) == pytest.approx(tone.expected_duration_ms(FIRST, speed=1.2), abs=PER_SEGMENT_MS)


async def test_barge_in_on_one_context_leaves_the_other_playing(tone_provider: ToneProvider) -> None:
    async with run_server(tone_settings(max_lead_ms=100), {"tone": tone_provider}) as server:
        async with websockets.connect(url(server)) as ws:
            await say(ws, text=LONG, context_id="old")  # not flushed: closing it is a barge-in
            first = json.loads(await ws.recv())
            assert first["contextId"] == "old" and first["audio"]
            await say(ws, text=FIRST, context_id="new", flush=True)
            await say(ws, context_id="old", close_context=True)
            audio, messages = await until_final(ws, "old")
            assert ms_of(audio.get("old", [])) < tone.expected_duration_ms(LONG) / 2
            await say(ws, context_id="new", close_context=True)
            more, _ = await until_final(ws, "new")
            new_audio = audio.get("new", []) + more.get("new", [])
            assert ms_of(new_audio) == pytest.approx(tone.expected_duration_ms(FIRST), abs=PER_SEGMENT_MS)
            assert not more.get("old")  # nothing of the cancelled context after its isFinal


async def test_bad_input_is_answered_and_touches_no_other_context(tone_server: RunningServer) -> None:
    async with websockets.connect(url(tone_server), max_size=None) as ws:
        await say(ws, text=" ", context_id="a")
        answers = []
        bad_messages = ("{not json", json.dumps({"text": 5, "context_id": "a"}), json.dumps({"text": "x", "volume": 3}))
        for bad in bad_messages:
            await ws.send(bad)
            answers.append(json.loads(await ws.recv()))
        await ws.send(b"\x00\x01")
        answers.append(json.loads(await ws.recv()))
        await ws.send("x" * (tone_settings().max_message_bytes + 1))
        answers.append(json.loads(await ws.recv()))
        assert [a["error"] for a in answers] == ["invalid_request"] * 5
        assert {a["code"] for a in answers} == {1008, 1003, 1009}
        for i in range(4):  # 5 contexts open: a sixth is refused, the socket stays
            await say(ws, text=" ", context_id=f"c{i}")
        await say(ws, text=" ", context_id="c4")
        refused = json.loads(await ws.recv())
        assert (refused["error"], refused["contextId"]) == ("max_active_conversations", "c4")
        await say(ws, text=FIRST, context_id="a", flush=True)
        await say(ws, context_id="a", close_context=True)
        audio, _ = await until_final(ws, "a")
        assert ms_of(audio["a"]) == pytest.approx(tone.expected_duration_ms(FIRST), abs=PER_SEGMENT_MS)


async def test_single_stream_input_ends_with_empty_text(tone_server: RunningServer) -> None:
    async with websockets.connect(url(tone_server, "stream-input")) as ws:
        schedule = {"chunk_length_schedule": [120, 160]}
        await say(ws, text=" ", voice_settings={"stability": 0.5}, generation_config=schedule)
        await say(ws, text=FIRST + " ", try_trigger_generation=True)
        await say(ws, text="")
        messages = [json.loads(m) async for m in ws]
    audio = [base64.b64decode(m["audio"]) for m in messages if "audio" in m]
    assert messages[-1] == {"isFinal": True} and ws.close_code == 1000
    assert ms_of(audio) == pytest.approx(tone.expected_duration_ms(FIRST), abs=PER_SEGMENT_MS)


async def test_single_stream_input_closes_on_bad_input(tone_server: RunningServer) -> None:
    async with websockets.connect(url(tone_server, "stream-input")) as ws:
        await say(ws, text=" ", context_id="a")
        error = json.loads(await ws.recv())
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert error["error"] == "invalid_request" and ws.close_code == 1008


async def test_unknown_voice_model_or_format_is_refused_at_the_handshake(tone_server: RunningServer) -> None:
    refusals = (
        ({"voice": "pNInz6obpgDQGcFmaJgB"}, 404),
        ({"model_id": "gpt"}, 400),
        ({"output_format": "pcm_32000"}, 400),
    )
    for bad, status in refusals:
        voice = str(bad.pop("voice", "beep"))
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(url(tone_server, voice=voice, **bad)):
                pass
        assert refused.value.response.status_code == status
        assert json.loads(refused.value.response.body)["detail"]["status"]


async def test_keys_in_the_header_or_the_first_message(tone_provider: ToneProvider) -> None:
    async with run_server(tone_settings(api_keys=("secret-key",)), {"tone": tone_provider}) as server:
        async with websockets.connect(url(server), additional_headers={"xi-api-key": "secret-key"}) as ws:
            await say(ws, text=FIRST, context_id="a", flush=True)
            await say(ws, context_id="a", close_context=True)
            audio, _ = await until_final(ws, "a")
            assert audio["a"]
        async with websockets.connect(url(server, "stream-input")) as ws:
            await say(ws, text=" ", **{"xi-api-key": "secret-key"})
            await say(ws, text=FIRST)
            await say(ws, text="")
            assert json.loads([m async for m in ws][-1]) == {"isFinal": True}
        async with websockets.connect(url(server)) as ws:
            await say(ws, text=" ", context_id="a", xi_api_key="wrong")
            assert json.loads(await ws.recv())["error"] == "invalid_api_key"
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 1008
        assert len(server.state.admission) == 0
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(url(server), additional_headers={"xi-api-key": "wrong"}):
                pass
        assert refused.value.response.status_code == 401
        async with httpx.AsyncClient() as client:
            path = f"{server.http_url}/v1/text-to-speech/beep/stream?output_format=pcm_24000"
            assert (await client.post(path, json={"text": FIRST})).status_code == 401
            spoken = await client.post(path, json={"text": FIRST}, headers={"xi-api-key": "secret-key"})
            assert spoken.status_code == 200
            spoken_ms = len(spoken.content) / 2 / RATE * 1000
            assert spoken_ms == pytest.approx(tone.expected_duration_ms(FIRST), abs=PER_SEGMENT_MS)


async def test_a_socket_that_never_sends_its_key_or_a_context_is_closed(tone_provider: ToneProvider) -> None:
    # A socket waiting for its first message's key may wait --header-timeout-s, and a keyed one
    # with no context open its inactivity timeout: neither may hold a connection slot forever.
    settings = tone_settings(api_keys=("secret-key",), header_timeout_s=0.3)
    async with run_server(settings, {"tone": tone_provider}) as server:
        async with websockets.connect(url(server)) as silent:
            error = json.loads(await silent.recv())
            with pytest.raises(ConnectionClosed):
                await silent.recv()
        assert error["error"] == "input_timeout_exceeded" and silent.close_code == 1008
        headers = {"xi-api-key": "secret-key"}
        async with websockets.connect(url(server, inactivity_timeout="1"), additional_headers=headers) as unused:
            error = json.loads(await unused.recv())
            with pytest.raises(ConnectionClosed):
                await unused.recv()
        assert error["error"] == "input_timeout_exceeded" and unused.close_code == 1008
        assert len(server.state.access.connections) <= 1  # only a closing one, if any


async def test_rest_stream_errors_in_elevenlabs_shape(tone_server: RunningServer) -> None:
    async with httpx.AsyncClient() as client:
        base = f"{tone_server.http_url}/v1/text-to-speech"
        unknown_field = await client.post(f"{base}/beep/stream", json={"text": FIRST, "volume": 2})
        assert unknown_field.status_code == 422 and unknown_field.json()["detail"]["status"] == "bad_message"
        blank = await client.post(f"{base}/beep/stream", json={"text": "   "})
        assert blank.status_code == 400 and blank.json()["detail"]["status"] == "invalid_request"
        mp3 = await client.post(f"{base}/beep/stream", json={"text": FIRST, "model_id": "eleven_turbo_v2_5"})
        assert mp3.status_code == 200 and mp3.headers["content-type"] == "audio/mpeg"
        assert mp3.content[:1] in (b"\xff", b"I")  # an MP3 frame, or an ID3 tag
