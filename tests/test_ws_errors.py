"""Bad input gets a precise error, and loses nothing else: the connection keeps working."""

from __future__ import annotations

import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from .conftest import RunningServer, run_server, tone_settings
from .helpers import receive, receive_all, send, wait_for


async def assert_still_usable(ws, ready: dict) -> None:
    """A valid sentence after the error is synthesized with the stream's original options."""
    await send(ws, type="text", text="Still here.")
    await send(ws, type="end")
    transcript = await receive_all(ws)
    assert [s["text"] for s in transcript.messages("segment")] == ["Still here."]
    assert transcript.frames()
    assert transcript.messages("done")
    assert not transcript.messages("ready"), "a failed config must not change the stream"
    assert ws.close_code == 1000
    assert ready["type"] == "ready"


MALFORMED = [
    pytest.param("this is not json", "bad_message", "malformed", id="not-json"),
    pytest.param("[1, 2]", "bad_message", "array", id="array"),
    pytest.param('{"text": "hi"}', "bad_message", "type", id="no-type"),
    pytest.param('{"type": "speak"}', "bad_message", "speak", id="unknown-type"),
    pytest.param('{"type": "text"}', "bad_message", "text", id="missing-field"),
    pytest.param('{"type": "text", "text": 5}', "bad_message", "$.text", id="wrong-field-type"),
    pytest.param('{"type": "text", "text": "a", "lang": "en"}', "bad_message", "lang", id="unknown-field"),
    pytest.param('{"type": "config", "speed": 10}', "bad_message", "$.speed", id="speed-out-of-range"),
    pytest.param('{"type": "config", "voice": "nobody"}', "unknown_voice", "nobody", id="unknown-voice"),
    pytest.param('{"type": "config", "format": "mp7"}', "unsupported_format", "mp7", id="unknown-format"),
    pytest.param('{"type": "config", "provider": "x"}', "unknown_provider", "'x'", id="unknown-provider"),
    pytest.param('{"type": "config", "sample_rate": 12345}', "unsupported_sample_rate", "12345", id="bad-rate"),
    pytest.param('{"type": "config", "frame_ms": 300}', "bad_frame_ms", "between", id="frame-ms-too-long"),
    pytest.param(
        '{"type": "config", "sample_rate": 22050, "frame_ms": 10}', "bad_frame_ms", "whole number", id="frame-ms-fraction"
    ),
    pytest.param(
        '{"type": "config", "format": "opus", "frame_ms": 25}', "bad_frame_ms", "opus", id="bad-opus-frame"
    ),
]

REFUSED_CONFIG_CODES = {"unknown_voice", "unsupported_format", "unknown_provider", "unsupported_sample_rate", "bad_frame_ms"}


@pytest.mark.parametrize(("raw", "code", "mentions"), MALFORMED)
async def test_malformed_message_gets_a_precise_error(tone_server: RunningServer, raw, code, mentions) -> None:
    async with connect(tone_server.ws_url) as ws:
        ready = await receive(ws)
        await ws.send(raw)
        error = await receive(ws)
        assert error["type"] == "error" and error["code"] == code
        assert mentions in error["message"]
        assert "seq" not in error
        if code in REFUSED_CONFIG_CODES:
            # A config the server understood but cannot honour leaves the stream unconfigured.
            await send(ws, type="text", text="Lost.")
            assert (await receive(ws))["code"] == "not_configured"
            await send(ws, type="config")
            ready = await receive(ws)
        await assert_still_usable(ws, ready)


async def test_binary_frame_from_the_client_is_refused(tone_server: RunningServer) -> None:
    async with connect(tone_server.ws_url) as ws:
        ready = await receive(ws)
        await ws.send(b"\x00\x01")
        error = await receive(ws)
        assert error["code"] == "bad_message" and "binary" in error["message"]
        await assert_still_usable(ws, ready)


async def test_config_after_the_first_message_is_refused(tone_server: RunningServer) -> None:
    async with connect(tone_server.ws_url) as ws:
        ready = await receive(ws)
        await send(ws, type="text", text="Hello")
        await send(ws, type="config", voice="low")
        error = await receive(ws)
        assert error["code"] == "config_too_late"
        await send(ws, type="text", text=" world.")
        await send(ws, type="end")
        transcript = await receive_all(ws)
    assert [s["text"] for s in transcript.messages("segment")] == ["Hello world."]
    assert ready["voice"] == "beep"


async def test_text_after_end_is_refused_and_the_stream_still_completes(tone_server: RunningServer) -> None:
    async with connect(tone_server.ws_url) as ws:
        await receive(ws)
        await send(ws, type="text", text="Only this.")
        await send(ws, type="end")
        await send(ws, type="text", text="Too late.")
        transcript = await receive_all(ws)
    errors = transcript.messages("error")
    assert [e["code"] for e in errors] == ["stream_ended"]
    assert [s["text"] for s in transcript.messages("segment")] == ["Only this."]
    assert transcript.items[-1]["type"] == "done"
    assert ws.close_code == 1000


@pytest.mark.parametrize(
    ("query", "code"),
    [("sample_rate=abc", "bad_message"), ("voice=nobody", "unknown_voice"), ("format=wav2", "unsupported_format")],
)
async def test_bad_url_parameters_get_an_error_and_close_1008(tone_server: RunningServer, query, code) -> None:
    async with connect(f"{tone_server.ws_url}?{query}") as ws:
        error = await receive(ws)
        assert error["type"] == "error" and error["code"] == code
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert ws.close_code == 1008


async def test_oversized_message_gets_an_error_then_close_1009(tone_provider) -> None:
    settings = tone_settings(max_message_bytes=1024)
    async with run_server(settings, {"tone": tone_provider}) as server:
        async with connect(server.ws_url) as ws:
            await receive(ws)
            await send(ws, type="text", text="Just fits. " * 50)  # under the limit: fine
            await send(ws, type="text", text="x" * 2000)
            transcript = await receive_all(ws)
        errors = transcript.messages("error")
        assert [e["code"] for e in errors] == ["message_too_large"]
        assert "1024" in errors[0]["message"]
        assert ws.close_code == 1009
        # A multi-byte message is measured in bytes, not characters.
        async with connect(server.ws_url) as ws:
            await receive(ws)
            await ws.send(json.dumps({"type": "text", "text": "é" * 600}, ensure_ascii=False))
            transcript = await receive_all(ws)
        assert [e["code"] for e in transcript.messages("error")] == ["message_too_large"]
        assert ws.close_code == 1009


async def test_text_beyond_the_pending_limit_is_dropped_with_an_error(tone_provider) -> None:
    settings = tone_settings(max_pending_chars=100, ring_ms=100)
    async with run_server(settings, {"tone": tone_provider}) as server, connect(server.ws_url) as ws:
        await receive(ws)
        await send(ws, type="text", text="a " * 40)  # 80 chars, no sentence end yet
        await send(ws, type="text", text="b " * 20)  # 40 more: over 100
        error = await receive(ws)
        assert error["code"] == "pending_text_limit"
        await send(ws, type="text", text="end.")
        await send(ws, type="end")
        transcript = await receive_all(ws)
    texts = [s["text"] for s in transcript.messages("segment")]
    assert texts == [("a " * 40 + "end.").strip()]
    assert ws.close_code == 1000


async def test_a_refused_first_config_can_be_corrected(tone_server: RunningServer) -> None:
    async with connect(tone_server.ws_url) as ws:
        await receive(ws)
        await send(ws, type="config", voice="nobody")
        assert (await receive(ws))["code"] == "unknown_voice"
        await ws.send("{not json")
        assert (await receive(ws))["code"] == "bad_message"
        await send(ws, type="config", voice="low")
        ready = await receive(ws)
        assert (ready["type"], ready["voice"]) == ("ready", "low")


async def test_a_refused_config_leaves_the_stream_unconfigured_until_a_valid_one(tone_server: RunningServer) -> None:
    # The client wants opus: after the refusal no pcm of the defaults in `ready` may flow.
    async with connect(tone_server.ws_url) as ws:
        assert (await receive(ws))["format"] == "pcm"
        await send(ws, type="config", provider="nobody", format="opus")
        assert (await receive(ws))["code"] == "unknown_provider"
        for message in ({"type": "text", "text": "Hello there."}, {"type": "flush"}, {"type": "end"}):
            await send(ws, **message)
            error = await receive(ws)
            assert (error["type"], error["code"]) == ("error", "not_configured")
        await send(ws, type="config", format="opus")
        ready = await receive(ws)
        assert (ready["type"], ready["format"]) == ("ready", "opus")
        await send(ws, type="text", text="Now it speaks.")
        await send(ws, type="end")
        transcript = await receive_all(ws)
    assert [s["text"] for s in transcript.messages("segment")] == ["Now it speaks."]
    assert transcript.messages("done")[0]["text_chars"] == len("Now it speaks.")
    assert ws.close_code == 1000


async def test_a_full_server_says_busy_and_the_open_stream_goes_on(tone_provider) -> None:
    import httpx

    async with run_server(tone_settings(max_streams=1), {"tone": tone_provider}) as server:
        async with connect(server.ws_url) as first:
            ready = await receive(first)
            async with connect(server.ws_url) as second:
                error = await receive(second)
                with pytest.raises(ConnectionClosed):
                    await second.recv()
            assert error["code"] == "server_busy" and second.close_code == 1013
            async with httpx.AsyncClient(base_url=server.http_url) as http:
                busy = await http.post("/v1/audio/speech", json={"model": "tts-1", "voice": "a", "input": "Hi."})
            assert busy.status_code == 503 and busy.json()["error"]["code"] == "server_busy"
            await assert_still_usable(first, ready)
        await wait_for(lambda: not server.state.streams)  # the first stream has been cleaned up
        async with connect(server.ws_url) as again:  # and its slot is free again
            assert (await receive(again))["type"] == "ready"
