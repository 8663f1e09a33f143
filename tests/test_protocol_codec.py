"""Tests of the wire codec: client JSON → message structs, server structs → JSON."""

from __future__ import annotations

import json

import pytest

from stream_server.protocol import (
    Cancel,
    Cancelled,
    Config,
    Done,
    End,
    Error,
    ErrorCode,
    Flush,
    ProtocolError,
    Ready,
    SegmentEnd,
    SegmentStart,
    Text,
    decode_client_message,
    encode_server_message,
)

# -- decoding client messages -------------------------------------------------------------------


def test_config_with_all_fields() -> None:
    message = decode_client_message(
        '{"type": "config", "provider": "tone", "voice": "low", "format": "opus",'
        ' "sample_rate": 48000, "frame_ms": 40, "speed": 1.5}'
    )
    assert message == Config(
        provider="tone", voice="low", format="opus", sample_rate=48000, frame_ms=40, speed=1.5
    )


def test_config_without_fields_leaves_everything_unset() -> None:
    assert decode_client_message('{"type": "config"}') == Config()


def test_config_speed_bounds_are_inclusive() -> None:
    assert decode_client_message('{"type": "config", "speed": 0.25}') == Config(speed=0.25)
    assert decode_client_message('{"type": "config", "speed": 4}') == Config(speed=4.0)


def test_text() -> None:
    assert decode_client_message('{"type": "text", "text": "Hello, world. "}') == Text("Hello, world. ")


def test_text_from_utf8_bytes() -> None:
    assert decode_client_message('{"type":"text","text":"héllo ✓"}'.encode()) == Text("héllo ✓")


def test_empty_text_is_a_valid_message() -> None:
    assert decode_client_message('{"type": "text", "text": ""}') == Text("")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [('{"type": "flush"}', Flush()), ('{"type": "cancel"}', Cancel()), ('{"type": "end"}', End())],
)
def test_messages_without_fields(raw: str, expected: object) -> None:
    message = decode_client_message(raw)
    assert message == expected
    assert type(message) is type(expected)


# -- malformed client messages ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "pointer"),
    [
        pytest.param("{bad json", "malformed", id="invalid-json"),
        pytest.param("", "truncated", id="empty"),
        pytest.param('{"type": "text", "text": "abc"', "truncated", id="truncated"),
        pytest.param(b"\xff\xfe", "malformed", id="not-utf8"),
        pytest.param('[{"type": "end"}]', "array", id="json-array"),
        pytest.param('"end"', "object", id="json-string"),
        pytest.param("{}", "`type`", id="missing-type"),
        pytest.param('{"text": "hi"}', "`type`", id="missing-type-with-fields"),
        pytest.param('{"type": "speak", "text": "hi"}', "'speak'", id="unknown-type"),
        pytest.param('{"type": 5}', "$.type", id="type-not-a-string"),
        pytest.param('{"type": "text", "text": 5}', "$.text", id="text-not-a-string"),
        pytest.param('{"type": "text", "text": null}', "$.text", id="text-null"),
        pytest.param('{"type": "text"}', "`text`", id="missing-text"),
        pytest.param('{"type": "flush", "now": true}', "`now`", id="unknown-field"),
        pytest.param('{"type": "config", "volume": 3}', "`volume`", id="unknown-config-field"),
        pytest.param('{"type": "config", "speed": 9}', "$.speed", id="speed-too-high"),
        pytest.param('{"type": "config", "speed": 0.1}', "$.speed", id="speed-too-low"),
        pytest.param('{"type": "config", "speed": "fast"}', "$.speed", id="speed-not-a-number"),
        pytest.param('{"type": "config", "sample_rate": -16000}', "$.sample_rate", id="negative-rate"),
        pytest.param('{"type": "config", "sample_rate": 0}', "$.sample_rate", id="zero-rate"),
        pytest.param('{"type": "config", "sample_rate": "16000"}', "$.sample_rate", id="rate-string"),
        pytest.param('{"type": "config", "frame_ms": 0}', "$.frame_ms", id="zero-frame-ms"),
        pytest.param('{"type": "config", "format": 1}', "$.format", id="format-not-a-string"),
    ],
)
def test_malformed_message_is_bad_message_pointing_at_the_problem(raw: str | bytes, pointer: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_client_message(raw)
    assert caught.value.code == ErrorCode.BAD_MESSAGE
    assert caught.value.code == "bad_message"
    assert pointer in caught.value.message
    assert str(caught.value) == caught.value.message


def test_bad_message_error_is_not_chained_to_msgspec() -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_client_message("{")
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


# -- encoding server messages -------------------------------------------------------------------


def encoded(message: object) -> dict[str, object]:
    text = encode_server_message(message)  # type: ignore[arg-type]
    assert isinstance(text, str)
    assert "\n" not in text
    return json.loads(text)


def test_ready() -> None:
    message = Ready(
        provider="tone",
        voice="beep",
        format="pcm",
        mime="audio/L16",
        sample_rate=24000,
        channels=1,
        frame_ms=20,
        speed=1.0,
        language="en",
        eager_first_segment=0,
        boundary_timeout_ms=150,
        max_segment_chars=300,
        max_lead_ms=1500,
    )
    assert encoded(message) == {
        "type": "ready",
        "provider": "tone",
        "voice": "beep",
        "format": "pcm",
        "mime": "audio/L16",
        "sample_rate": 24000,
        "channels": 1,
        "frame_ms": 20,
        "speed": 1.0,
        "language": "en",
        "eager_first_segment": 0,
        "boundary_timeout_ms": 150,
        "max_segment_chars": 300,
        "max_lead_ms": 1500,
    }


def test_segment_start() -> None:
    assert encoded(SegmentStart(3, "Hello there.")) == {"type": "segment", "seq": 3, "text": "Hello there."}


def test_segment_start_keeps_non_ascii_text() -> None:
    assert encoded(SegmentStart(0, 'Ça "va" ✓'))["text"] == 'Ça "va" ✓'


def test_segment_end() -> None:
    assert encoded(SegmentEnd(3, 1234.5)) == {"type": "segment_end", "seq": 3, "audio_ms": 1234.5}


def test_segment_seq_zero_is_kept() -> None:
    assert encoded(SegmentEnd(0, 0.0)) == {"type": "segment_end", "seq": 0, "audio_ms": 0.0}


def test_cancelled() -> None:
    assert encoded(Cancelled()) == {"type": "cancelled"}


def test_done_without_ttfa_omits_it() -> None:
    message = Done(segments=2, audio_ms=1500.0, text_chars=42, elapsed_ms=1800.5)
    assert encoded(message) == {
        "type": "done",
        "segments": 2,
        "audio_ms": 1500.0,
        "text_chars": 42,
        "elapsed_ms": 1800.5,
    }


def test_done_with_ttfa() -> None:
    message = Done(segments=1, audio_ms=80.0, text_chars=5, elapsed_ms=90.0, ttfa_ms=12.5)
    assert encoded(message)["ttfa_ms"] == 12.5


def test_error_without_seq_omits_seq() -> None:
    message = Error(code=ErrorCode.BAD_MESSAGE, message="Expected `str` - at `$.text`")
    assert encoded(message) == {
        "type": "error",
        "code": "bad_message",
        "message": "Expected `str` - at `$.text`",
    }


def test_error_with_seq() -> None:
    message = Error(code=ErrorCode.PROVIDER_ERROR, message="synthesis failed", seq=4)
    assert encoded(message) == {
        "type": "error",
        "code": "provider_error",
        "message": "synthesis failed",
        "seq": 4,
    }


def test_error_with_seq_zero_keeps_it() -> None:
    assert encoded(Error(code="provider_error", message="x", seq=0))["seq"] == 0


def test_protocol_error_round_trip_into_error_message() -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_client_message('{"type": "nope"}')
    reply = Error(code=caught.value.code, message=caught.value.message)
    assert encoded(reply)["code"] == "bad_message"
