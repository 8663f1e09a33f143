"""The cluster SSE sessions' wire (cluster/sse_wire.py), sans I/O: encodings, replay checkpoints,
and a replacement stream's outputs renumbered."""

from __future__ import annotations

import pytest

from stream_server.cluster.sse_wire import (
    Checkpoint,
    Checkpoints,
    Renumbering,
    TextCommand,
    decode_checkpoint,
    decode_command,
    encode_checkpoint,
    encode_command,
    entry_number,
    event_fields,
    event_of,
    session_keys,
)
from stream_server.media import EncodedFrame
from stream_server.protocol.messages import Done, Ready, SegmentEnd, SegmentStart, Warning
from stream_server.protocol.sse import SseEvent
from stream_server.text.segmenter import SentenceSegmenter


def test_commands_events_and_checkpoints_round_trip() -> None:
    for command in (TextCommand(text="Hi é"), TextCommand(flush=True, end=True), TextCommand(cancel=True)):
        assert decode_command(encode_command(command)) == command
    event = SseEvent(7, "audio", b'{"seq":0}', 20.0)
    fields = {k.encode(): v for k, v in event_fields(event).items()}
    assert event_of(b"7-0", fields) == event
    assert event_of(b"8-0", {b"k": b"__end__"}) is None
    assert entry_number(b"12-0") == 12
    point = Checkpoint("1700000000000-3", 4, "How are")
    assert decode_checkpoint(encode_checkpoint(point)) == point
    assert decode_checkpoint(None) == Checkpoint()


def test_keys_never_carry_the_session_id() -> None:
    session = "d16d9d6630a84ef783a9e8ffbc11cbfc"
    keys = session_keys(session)
    assert all(session not in k and k.startswith("ss:sse:") for k in keys.all)
    assert len(set(keys.all)) == 4 and session_keys(session) == keys


def test_checkpoints_move_only_past_spoken_segments() -> None:
    points = Checkpoints(Checkpoint())
    points.applied(Checkpoint("1-0", 0, "Hello the"))  # nothing cut yet
    points.applied(Checkpoint("2-0", 2, "How"))  # one command cut segments 0 and 1
    points.applied(Checkpoint("3-0", 3, ""))
    assert points.spoken(1) == Checkpoint("1-0", 0, "Hello the")  # 2-0 cut segment 1, not spoken yet
    assert points.spoken(1) is None  # no move
    assert points.spoken(3) == Checkpoint("3-0", 3, "")
    assert points.latest == Checkpoint("3-0", 3, "")


def test_checkpoints_are_bounded_and_keep_where_a_replay_starts() -> None:
    points = Checkpoints(Checkpoint())
    for n in range(Checkpoints.MAX * 2):
        points.applied(Checkpoint(f"{n + 1}-0", n + 1, ""))
    assert points.latest == Checkpoint()
    assert points.spoken(5) == Checkpoint("5-0", 5, "")


@pytest.mark.parametrize(
    "commands",
    [
        ["Hello the", "re. How are", " you? I am fine", ". Thanks, really. And", " you?"],
        ["One. Two. Three. Fo", "ur. Five", " and six.", " Seven"],
        ["Dr. Smith arrived at 10 a.m. He", " left. Then", " more text without end"],
    ],
)
def test_a_tail_and_the_later_commands_cut_the_same_remaining_segments(commands: list[str]) -> None:
    """What a new owner relies on: the checkpoint's uncut tail, then the commands after it, give
    a fresh segmenter exactly the segments the old one had not cut at that point."""
    whole = SentenceSegmenter(max_chars=300)
    texts: list[str] = []
    recent = ""
    points: list[Checkpoint] = []
    for index, command in enumerate(commands):
        texts += [s.text for s in whole.push(command)]
        recent += command
        uncut = whole.pending_chars
        points.append(Checkpoint(str(index), len(texts), recent[-uncut:] if uncut else ""))
    texts += [s.text for s in whole.flush()]
    for point in points:
        replay = SentenceSegmenter(max_chars=300)
        again = [s.text for s in replay.push(point.tail)] if point.tail else []
        for command in commands[int(point.after) + 1 :]:
            again += [s.text for s in replay.push(command)]
        again += [s.text for s in replay.flush()]
        assert again == texts[point.segments :], point


def test_a_replacement_streams_outputs_go_on_where_the_old_one_stopped() -> None:
    """The old stream spoke segments 0-2; the checkpoint was after segment 1 was cut (base 2):
    the new stream's segment 0 is the session's 2, already spoken, and is left out."""
    renumbering = Renumbering(base=2, spoken=3)
    ready = Ready(
        provider="tone", voice="low", format="pcm", mime="audio/L16", sample_rate=24000, channels=1, frame_ms=20,
        speed=1.0, language="en", eager_first_segment=0, boundary_timeout_ms=0, max_segment_chars=300, max_lead_ms=0,
    )  # fmt: skip
    moved = renumbering.output(ready)
    assert isinstance(moved, Warning) and (moved.code, moved.seq) == ("session_moved", 3)
    frame = EncodedFrame(b"\0\0" * 480, 20.0)
    outputs = [
        SegmentStart(0, "Spoken already."), frame, SegmentEnd(0, 20.0),
        SegmentStart(1, "Being spoken."), frame, SegmentEnd(1, 20.0),
        Warning(code="x", message="y", seq=1), Warning(code="z", message="w"),
        Done(segments=2, audio_ms=40.0, text_chars=28, elapsed_ms=1.0),
    ]  # fmt: skip
    sent = [renumbering.output(o) for o in outputs]
    assert sent == [
        None, None, None,
        SegmentStart(3, "Being spoken."), frame, SegmentEnd(3, 20.0),
        Warning(code="x", message="y", seq=3), Warning(code="z", message="w"),
        outputs[-1],
    ]  # fmt: skip
