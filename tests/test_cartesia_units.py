"""Cartesia's WebSocket rules without sockets: client messages → context commands, stream outputs
→ Cartesia messages, voice and format mapping, the context cap."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from stream_server.media import EncodedFrame
from stream_server.protocol import Config, Done, Error, ErrorCode, ProtocolError, SegmentEnd
from stream_server.providers import Provider
from stream_server.session import Relay, Stopped
from stream_server.settings_loader import settings_from_raw
from stream_server.transports.compat.cartesia.protocol import (
    Cancel,
    CartesiaConversation,
    ContextRenderer,
    End,
    Flush,
    Open,
    Reply,
    Text,
)
from stream_server.transports.compat.cartesia.request import Generation, Refused, decode_generation, generation_config

VOICE = "a0e99841-438c-4a64-b679-ae501e7d6091"
PROVIDERS: dict[str, Provider] = {"tone": object(), "piper": object()}  # type: ignore[dict-item]
SETTINGS = settings_from_raw({"cartesia_voice_map": [f"{VOICE}=piper:en_US-joe-medium", "plain=alloy"]})


def configure(request: Generation) -> Config:
    return generation_config(request, SETTINGS, PROVIDERS, containers=("raw",))


def message(context_id: str | None = "c", **fields: Any) -> str:
    body: dict[str, Any] = {
        "model_id": "sonic-2", "voice": {"mode": "id", "id": "11111111-2222-3333-4444-555555555555"},
        "output_format": {"container": "raw", "encoding": "pcm_s16le", "sample_rate": 24000},
        "transcript": "Hello.", "continue": True, **fields,
    }  # fmt: skip
    if context_id is not None:
        body["context_id"] = context_id
    return json.dumps(body)


def error_of(commands: list[Any]) -> dict[str, Any]:
    (reply,) = commands
    assert type(reply) is Reply
    parsed: dict[str, Any] = json.loads(reply.message)
    assert parsed["type"] == "error"
    return parsed


def test_a_context_opens_takes_text_flushes_and_ends() -> None:
    talk = CartesiaConversation(max_contexts=2)
    opened, text = talk.receive(message(), configure)
    assert type(opened) is Open and opened.config.format == "pcm" and opened.config.sample_rate == 24000
    assert opened.config.provider is None and opened.config.voice is None  # a Cartesia id: the default voice
    assert text == Text("c", "Hello.")
    assert talk.receive(message(transcript=" More", flush=True), configure) == [Text("c", " More"), Flush("c")]
    assert talk.receive(message(transcript="", **{"continue": False}), configure) == [End("c")]
    # Ended but still playing: more text is refused, a cancel still stops it.
    assert error_of(talk.receive(message(transcript="late"), configure))["error_code"] == "context_ended"
    assert talk.receive(json.dumps({"context_id": "c", "cancel": True}), configure) == [Cancel("c")]
    assert talk.receive(json.dumps({"context_id": "c", "cancel": True}), configure) == []  # nothing left to cancel
    assert talk.live_contexts == 0


def test_no_buffer_delay_speaks_each_transcript_and_no_context_id_is_one_whole_context() -> None:
    talk = CartesiaConversation(max_contexts=2)
    commands = talk.receive(message(max_buffer_delay_ms=0), configure)
    assert [type(c) for c in commands] == [Open, Text, Flush]
    opened, text, end = talk.receive(message(None), configure)
    assert type(opened) is Open and type(end) is End and opened.context_id == text.context_id == end.context_id


def test_the_cap_counts_live_contexts_and_frees_them_when_closed() -> None:
    talk = CartesiaConversation(max_contexts=1)
    talk.receive(message("a", **{"continue": False}), configure)
    refused = error_of(talk.receive(message("b"), configure))
    assert refused["error_code"] == "too_many_contexts" and refused["status_code"] == 429 and refused["context_id"] == "b"
    talk.closed("a")  # its audio ended
    assert type(talk.receive(message("b"), configure)[0]) is Open


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"surprise": 1}, "invalid_request"),
        ({"transcript": 5}, "invalid_request"),
        ({"output_format": {"container": "mp3", "sample_rate": 24000}}, "unsupported_container"),
        ({"output_format": {"container": "raw", "encoding": "pcm_s24le"}}, "unsupported_encoding"),
        ({"voice": {"mode": "embedding", "embedding": [0.5]}}, "unsupported_voice_mode"),
        ({"voice": {"mode": "id", "id": "nobody"}}, "voice_not_found"),
        ({"model_id": "whisper"}, "model_not_found"),
        ({"generation_config": {"speed": 9}}, "invalid_speed"),
        ({"max_buffer_delay_ms": 9000}, "invalid_request"),
    ],
)
def test_bad_requests_get_cartesia_errors_and_open_nothing(fields: dict[str, Any], code: str) -> None:
    talk = CartesiaConversation(max_contexts=2)
    error = error_of(talk.receive(message(**fields), configure))
    assert error["error_code"] == code and error["message"] == error["error"] and error["title"]
    assert talk.live_contexts == 0


def test_not_json_is_an_error_without_a_context() -> None:
    error = error_of(CartesiaConversation(2).receive("{nope", configure))
    assert error["error_code"] == "invalid_json" and error["context_id"] is None


def test_voice_mapping() -> None:
    def voice(voice_id: str, model: str = "sonic-2") -> tuple[str | None, str | None]:
        config = configure(decode_generation(message(voice={"mode": "id", "id": voice_id}, model_id=model)))
        return config.provider, config.voice

    assert voice(VOICE) == ("piper", "en_US-joe-medium")
    assert voice("plain") == (None, "alloy")
    assert voice("piper:en_US-joe-medium") == ("piper", "en_US-joe-medium")
    assert voice("beep", model="tone") == ("tone", "beep")
    with pytest.raises(Refused):
        voice("beep")


def test_rendering() -> None:
    renderer = ContextRenderer("c")
    (chunk,) = (json.loads(m) for m in renderer.render(EncodedFrame(b"\x01\x02", 20.0)))
    assert chunk == {
        "type": "chunk", "data": base64.b64encode(b"\x01\x02").decode(), "done": False, "status_code": 206,
        "context_id": "c", "flush_id": 1,
    }  # fmt: skip
    assert renderer.flushed(planned=1) == []  # segment 0 is still playing
    (flush_done,) = (json.loads(m) for m in renderer.render(SegmentEnd(seq=0, audio_ms=20.0)))  # type: ignore[call-arg]
    assert flush_done["type"] == "flush_done" and flush_done["flush_id"] == 1
    assert json.loads(renderer.render(EncodedFrame(b"\x00\x00", 20.0))[0])["flush_id"] == 2  # type: ignore[call-arg]
    (due,) = renderer.flushed(planned=1)  # nothing new since: done at once, in the control lane
    assert type(due) is Relay and json.loads(renderer.render(due)[0])["flush_id"] == 2
    assert json.loads(renderer.render(Done(segments=1, audio_ms=40.0, text_chars=6, elapsed_ms=50.0))[0]) == {"type": "done", "done": True, "status_code": 200, "context_id": "c"}  # type: ignore[call-arg]
    failed = json.loads(renderer.render(Error(code=ErrorCode.PROVIDER_ERROR, message="boom", seq=3))[0])
    assert failed["done"] is False and failed["error_code"] == "provider_error"
    assert renderer.render(Error(code=ErrorCode.IDLE_TIMEOUT, message="idle")) == []  # its Stopped says it
    stopped = json.loads(renderer.render(Stopped(ProtocolError(ErrorCode.IDLE_TIMEOUT, "idle")))[0])
    assert stopped["done"] is True and stopped["error_code"] == "idle_timeout"
