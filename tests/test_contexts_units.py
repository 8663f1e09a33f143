"""The contexts of one socket, sans I/O: the table, its cap, and whose audio the socket carries."""

from __future__ import annotations

import pytest

from stream_server.media import EncodedFrame
from stream_server.protocol import (
    Cancel,
    Cancelled,
    Done,
    End,
    ErrorCode,
    Error,
    ProtocolError,
    Ready,
    SegmentEnd,
    SegmentStart,
    Text,
    decode_client_message,
    encode_server_message,
)
from stream_server.session import Stopped
from stream_server.transports.contexts import FREE, ContextTable

FRAME = EncodedFrame(b"\0" * 4, 20.0)


def start(seq: int = 0) -> SegmentStart:
    return SegmentStart(seq, "Hello.")


def test_a_context_is_admitted_up_to_the_cap_and_refused_past_it_with_a_named_error() -> None:
    table: ContextTable[str] = ContextTable(cap=2)
    table.add("a", "stream a")
    table.add("b", "stream b")
    with pytest.raises(ProtocolError) as refused:
        table.admit("c")
    assert refused.value.code == ErrorCode.TOO_MANY_CONTEXTS
    assert "'c'" in refused.value.message and "at most 2" in refused.value.message
    assert table.get("c") is None and len(table) == 2
    table.remove("a")  # a finished: there is room again
    table.add("c", "stream c")
    assert table.values() == ["stream b", "stream c"]


def test_after_end_without_a_context_no_context_opens_and_the_open_ones_are_handed_out_to_end() -> None:
    table: ContextTable[str] = ContextTable(cap=5)
    table.add("a", "stream a")
    assert table.end_all() == ["stream a"]
    assert table.ending
    with pytest.raises(ProtocolError) as refused:
        table.admit("b")
    assert refused.value.code == ErrorCode.STREAM_ENDED


def test_a_cap_of_zero_refuses_every_named_context() -> None:
    with pytest.raises(ProtocolError) as refused:
        ContextTable(cap=0).admit("a")
    assert refused.value.code == ErrorCode.TOO_MANY_CONTEXTS


def test_a_segment_holds_the_audio_until_its_end_and_others_wait_in_turn() -> None:
    table: ContextTable[str] = ContextTable(cap=5)
    assert table.claim("a", start())
    assert table.holder == "a"
    assert table.claim("a", FRAME)  # its own frames go
    assert not table.claim("b", start())  # b waits for a's segment to end
    assert not table.claim(None, start())  # and the default stream after b
    # Messages that are not audio name their context: they go at once.
    for message in (Ready(provider="tone", voice="beep", format="pcm", mime="audio/L16", sample_rate=24000,
                              channels=1, frame_ms=20, speed=1.0, language="en", eager_first_segment=0,
                              boundary_timeout_ms=0, max_segment_chars=300, max_lead_ms=0),
                    Error(code="bad_message", message="x"), Cancelled(), Done(segments=0, audio_ms=0, text_chars=0, elapsed_ms=0)):  # fmt: skip
        assert table.claim("b", message)
    assert table.sent("a", SegmentEnd(0, 20.0))  # handed over: to b first, who asked first
    assert table.holder == "b"
    assert not table.claim("a", start(1))  # a's next segment waits behind the default stream
    assert not table.claim(None, start())
    assert table.claim("b", start())
    assert table.sent("b", SegmentEnd(0, 20.0))
    assert table.holder is None  # the default stream's turn
    assert table.claim(None, start())
    assert table.sent(None, SegmentEnd(0, 20.0))
    assert table.holder == "a"
    assert table.claim("a", start(1))


def test_one_context_with_many_segments_cannot_keep_another_waiting_more_than_one_segment() -> None:
    table: ContextTable[str] = ContextTable(cap=5)
    assert table.claim("a", start(0))
    assert not table.claim("b", start(0))
    for seq in range(1, 4):  # a has segment after segment ready; b gets every other turn
        table.sent("a", SegmentEnd(seq - 1, 20.0))
        assert not table.claim("a", start(seq))
        assert table.claim("b", start(seq - 1))
        table.sent("b", SegmentEnd(seq - 1, 20.0))
        assert table.claim("a", start(seq))
        assert not table.claim("b", start(seq))


def test_the_audio_is_given_back_by_cancelled_done_or_stopped() -> None:
    for last in (Cancelled(), Done(segments=1, audio_ms=20, text_chars=6, elapsed_ms=1),
                 Stopped(ProtocolError(ErrorCode.IDLE_TIMEOUT, "idle"))):  # fmt: skip
        table: ContextTable[str] = ContextTable(cap=5)
        assert table.claim("a", start())
        assert not table.sent("a", FRAME)
        assert table.sent("a", last)
        assert table.holder is FREE


def test_a_context_that_gives_up_its_place_or_goes_away_passes_the_audio_on() -> None:
    table: ContextTable[str] = ContextTable(cap=5)
    table.add("a", "stream a")
    assert table.claim("a", start())
    assert not table.claim("b", start())
    assert not table.claim("c", start())
    assert not table.withdraw("b")  # b was cancelled while waiting: it leaves the queue
    table.remove("a")  # a's client went away mid-segment
    assert table.holder == "c"
    assert table.withdraw("c")  # handed the audio, but cancelled before it woke
    assert table.holder is FREE


def test_a_trailer_frame_outside_a_segment_holds_the_audio_until_done() -> None:
    table: ContextTable[str] = ContextTable(cap=5)
    assert table.claim("a", FRAME)
    assert not table.claim("b", start())
    assert not table.sent("a", FRAME)
    assert table.sent("a", Done(segments=1, audio_ms=20, text_chars=6, elapsed_ms=1))
    assert table.holder == "b"


def test_messages_take_a_context_and_refuse_a_bad_id() -> None:
    assert decode_client_message('{"type":"text","text":"Hi.","context":"reply-1:a.b_c"}') == Text("Hi.", context="reply-1:a.b_c")
    assert decode_client_message('{"type":"cancel","context":"x"}') == Cancel(context="x")
    assert decode_client_message('{"type":"end"}') == End()
    for bad in ('""', '"a b"', '"' + "x" * 65 + '"', "7", '"ünï"'):
        with pytest.raises(ProtocolError) as refused:
            decode_client_message(f'{{"type":"flush","context":{bad}}}')
        assert refused.value.code == ErrorCode.BAD_MESSAGE
        assert "$.context" in refused.value.message


def test_server_messages_name_their_context_only_when_they_have_one() -> None:
    assert encode_server_message(Cancelled()) == '{"type":"cancelled"}'
    assert encode_server_message(Cancelled(context="a")) == '{"type":"cancelled","context":"a"}'
    assert encode_server_message(SegmentStart(3, "Hi.", context="b")) == '{"type":"segment","seq":3,"text":"Hi.","context":"b"}'
