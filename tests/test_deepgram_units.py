"""The Deepgram protocol's rules, sans I/O: client messages to commands, stream outputs to
Deepgram messages, which `Flushed` are due when, and how a `/v1/speak` URL maps to options."""

from __future__ import annotations

import json

import pytest

from stream_server.media import EncodedFrame
from stream_server.protocol import Cancelled, Done, Error, ErrorCode, ProtocolError, Ready, SegmentEnd, SegmentStart
from stream_server.session import Relay, Stopped
from stream_server.settings_loader import settings_from_raw
from stream_server.transports.compat.deepgram.protocol import (
    CloseSocket,
    DeepgramConversation,
    FlushTracker,
    Malformed,
    Send,
    UnsupportedData,
    stop_close,
)
from stream_server.transports.compat.deepgram.request import Refused, resolve_model, speak_request


def _messages(wire: list[object]) -> list[dict[str, object]]:
    return [json.loads(item.data) for item in wire if type(item) is Send and isinstance(item.data, str)]


def test_client_messages_become_commands() -> None:
    talk = DeepgramConversation("req", "aura-2-thalia-en")
    speak = talk.receive('{"type": "Speak", "text": "Hi. "}')
    assert (speak.kind, speak.text) == ("text", "Hi. ")
    assert [talk.receive(json.dumps({"type": t})).kind for t in ("Flush", "Clear", "Close")] == ["flush", "clear", "close"]


@pytest.mark.parametrize(
    ("frame", "named"),
    [
        ('{"type": "Speak", "text": 5}', "$.text"),
        ('{"type": "Speak", "text": "a", "voice": "x"}', "voice"),
        ('{"type": "Shout"}', "Shout"),
        ('{"text": "no type"}', "type"),
        ("[1, 2]", "object"),
    ],
)
def test_a_message_it_cannot_take_is_a_warning_naming_the_problem(frame: str, named: str) -> None:
    command = DeepgramConversation("req", "m").receive(frame)
    assert command.kind == "warn"
    warning = json.loads(command.text)
    assert warning["type"] == "Warning" and warning["code"] == ErrorCode.BAD_MESSAGE
    assert named in warning["description"] and warning["warn_msg"] == warning["description"]


def test_a_frame_that_is_not_json_is_malformed_and_closes_with_data_0000() -> None:
    with pytest.raises(Malformed) as raised:
        DeepgramConversation("req", "m").receive("Speak hello")
    assert stop_close(raised.value) == CloseSocket(1008, f"DATA-0000: {raised.value.message}")
    assert stop_close(UnsupportedData()).code == 1003
    assert stop_close(ProtocolError(ErrorCode.MESSAGE_TOO_LARGE, "big")) == CloseSocket(1009, "BIG-0000: big")
    assert stop_close(ProtocolError(ErrorCode.IDLE_TIMEOUT, "idle")).code == 1011


def test_flushed_waits_for_the_last_segment_planned_before_the_flush() -> None:
    flushes = FlushTracker()
    assert flushes.flush(planned=0) == [0]  # nothing was said: due at once
    assert flushes.flush(planned=2) == []
    assert flushes.flush(planned=2) == []  # nothing new: shares the entry, keeps its own id
    assert flushes.flush(planned=3) == []
    assert flushes.segment_ended(0) == []
    assert flushes.segment_ended(1) == [1, 2]
    assert flushes.segment_ended(2) == [3]
    assert flushes.flush(planned=3) == [4]


def test_a_clear_drops_the_pending_flushes_and_settles_what_was_planned() -> None:
    flushes = FlushTracker()
    assert flushes.flush(planned=2) == []
    flushes.cleared(planned=2)
    assert flushes.segment_ended(5) == []  # the cleared flush never completes
    assert flushes.flush(planned=6) == [1]
    assert flushes.flush(planned=7) == []
    assert flushes.segment_ended(6) == [2]


def test_outputs_render_as_deepgram_messages_in_order() -> None:
    talk = DeepgramConversation("req-1", "aura-2-thalia-en")
    ready = Ready(
        provider="tone", voice="beep", format="pcm", mime="audio/L16", sample_rate=24000, channels=1, frame_ms=20,
        speed=1.0, language="en", eager_first_segment=0, boundary_timeout_ms=0, max_segment_chars=400, max_lead_ms=0,
    )  # fmt: skip
    (metadata,) = _messages(talk.render(ready))
    assert metadata["type"] == "Metadata" and metadata["request_id"] == "req-1"
    assert metadata["model_name"] == "aura-2-thalia-en" and isinstance(metadata["model_uuid"], str)
    assert talk.flushed(planned=1) == []
    frame = EncodedFrame(b"\x01\x02", 20.0)
    assert talk.render(SegmentStart(0, "Hi.")) == []
    assert talk.render(frame) == [Send(b"\x01\x02")]
    assert _messages(talk.render(SegmentEnd(0, 20.0))) == [{"type": "Flushed", "sequence_id": 0}]
    (relay,) = talk.flushed(planned=1)
    assert type(relay) is Relay and _messages(talk.render(relay)) == [{"type": "Flushed", "sequence_id": 1}]
    assert _messages(talk.render(Cancelled())) == [{"type": "Cleared", "sequence_id": 0}]
    assert _messages(talk.render(Cancelled())) == [{"type": "Cleared", "sequence_id": 1}]
    (failed,) = _messages(talk.render(Error(code=ErrorCode.PROVIDER_ERROR, message="boom", seq=3)))
    assert failed["type"] == "Warning" and failed["code"] == ErrorCode.PROVIDER_ERROR
    assert talk.render(Done(segments=1, audio_ms=20.0, text_chars=3, elapsed_ms=5.0)) == [CloseSocket(1000, "")]
    stopped = Stopped(ProtocolError(ErrorCode.SHUTTING_DOWN, "bye"))
    assert talk.render(stopped) == [CloseSocket(1001, "NET-0003: bye")]


SETTINGS = settings_from_raw({
    "providers": ("tone",), "provider": "tone", "deepgram_voice_map": ("aura-2-thalia-en=tone:low", "aura-luna-en=beep"),
})  # fmt: skip
PROVIDERS = {"tone": object()}


def test_models_map_to_voices() -> None:
    assert resolve_model("aura-2-thalia-en", SETTINGS, PROVIDERS) == ("tone", "low")
    assert resolve_model("aura-luna-en", SETTINGS, PROVIDERS) == (None, "beep")
    assert resolve_model("aura-2-zeus-en", SETTINGS, PROVIDERS) == (None, None)  # any aura: the defaults
    assert resolve_model("tone:low", SETTINGS, PROVIDERS) == ("tone", "low")
    with pytest.raises(Refused) as refused:
        resolve_model("nova-3", SETTINGS, PROVIDERS)
    assert refused.value.status == 400 and "nova-3" in refused.value.message


@pytest.mark.parametrize(
    ("query", "socket", "fmt", "rate"),
    [
        ({}, True, "pcm", 24000),
        ({"encoding": "mulaw", "sample_rate": "8000"}, True, "mulaw", 8000),
        ({"encoding": "alaw"}, True, "alaw", 8000),
        ({}, False, "mp3", 22050),
        ({"encoding": "linear16", "container": "none", "sample_rate": "16000"}, False, "pcm", 16000),
        ({"encoding": "linear16"}, False, "wav", 24000),
        ({"encoding": "opus"}, False, "ogg_opus", 48000),
    ],
)
def test_encodings_map_to_formats(query: dict[str, str], socket: bool, fmt: str, rate: int) -> None:
    config = speak_request({"model": "aura-2-thalia-en", **query}, SETTINGS, PROVIDERS, socket=socket).config
    assert (config.format, config.sample_rate) == (fmt, rate)


@pytest.mark.parametrize(
    ("query", "socket", "named"),
    [
        ({"encoding": "mp3"}, True, "encoding"),
        ({"encoding": "linear16", "container": "wav"}, True, "container"),
        ({"encoding": "mulaw", "container": "wav"}, False, "container"),
        ({"sample_rate": "fast"}, True, "sample_rate"),
        ({"speed": "9"}, True, "speed"),
        ({"voice": "x"}, True, "'voice'"),
    ],
)
def test_a_url_it_cannot_serve_is_refused(query: dict[str, str], socket: bool, named: str) -> None:
    with pytest.raises(Refused) as refused:
        speak_request(query, SETTINGS, PROVIDERS, socket=socket)
    assert refused.value.code == "INVALID_QUERY_PARAMETER" and named in refused.value.message
