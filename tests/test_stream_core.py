"""The stream core's rules, without sockets, tasks or a clock: commands in, outputs out.

Every test drives `StreamCore` by hand, playing synthesis (`next_segment`, `produce`) and the
transport (`next_output`, `sent`) itself, with `now` chosen by the test.
"""

from __future__ import annotations

import pytest

from stream_server.audio.formats import get_format
from stream_server.media import EncodedFrame
from stream_server.protocol import (
    Cancelled,
    Done,
    Error,
    ErrorCode,
    ProtocolError,
    Ready,
    SegmentEnd,
    SegmentStart,
    Warning,
)
from stream_server.session import core as core_module
from stream_server.session.core import (
    CONTROL_LANE,
    END_OF_INPUT,
    ControlOverflow,
    CoreLimits,
    Phase,
    Planned,
    StreamCore,
)
from stream_server.session.options import StreamOptions
from stream_server.session.outputs import Stopped

FRAME = EncodedFrame(b"\x00" * 40, 20.0)


def options(**overrides: object) -> StreamOptions:
    fmt = get_format("pcm")
    assert fmt is not None
    base: dict[str, object] = dict(
        provider="tone", voice="beep", format=fmt, sample_rate=16000, frame_ms=20, speed=1.0,
        max_lead_ms=0, idle_timeout_s=30.0, max_stream_s=3600.0, boundary_timeout_ms=150,
    )  # fmt: skip
    base.update(overrides)
    return StreamOptions(**base)  # type: ignore[arg-type]


def make(now: float = 0.0, *, ring_ms: float = 1000, max_pending_chars: int = 1000, **overrides: object) -> StreamCore:
    return StreamCore(options(**overrides), CoreLimits(ring_ms=ring_ms, max_pending_chars=max_pending_chars), now)


def drain(core: StreamCore, now: float = 0.0) -> list[object]:
    """Everything sendable at `now`, as a transport would send it."""
    sent: list[object] = []
    while (output := core.next_output(now)) is not None and not isinstance(output, float):
        core.sent(output, now)
        sent.append(output)
    return sent


def synthesize(core: StreamCore, planned: Planned, frames: int = 2) -> None:
    """What the synthesis of one segment puts into the ring."""
    epoch = core.epoch
    assert core.produce(epoch, SegmentStart(planned.seq, planned.text))
    for _ in range(frames):
        assert core.fits(FRAME.duration_ms)
        assert core.produce(epoch, FRAME, FRAME.duration_ms)
    assert core.produce(epoch, SegmentEnd(planned.seq, frames * FRAME.duration_ms))
    core.segment_done(epoch, planned)


def queued(core: StreamCore, text: str, frames: int = 2, now: float = 0.0) -> Planned:
    """`text` flushed as one segment, taken by synthesis and put into the ring whole."""
    core.text(text, now)
    core.flush(now)
    planned = core.next_segment(core.epoch)
    assert isinstance(planned, Planned)
    synthesize(core, planned, frames)
    return planned


def kinds(outputs: list[object]) -> list[str]:
    return [type(o).__name__ for o in outputs]


# -- order and done ------------------------------------------------------------------------------


def test_ready_comes_first_and_done_only_after_the_last_segment_was_sent() -> None:
    core = make()
    assert kinds(drain(core)) == ["Ready"]
    core.text("One here. Two there.", 0.0)
    core.end(0.0)
    first = core.next_segment(core.epoch)
    second = core.next_segment(core.epoch)
    assert isinstance(first, Planned) and isinstance(second, Planned)
    assert (first.seq, first.text, second.seq, second.text) == (0, "One here.", 1, "Two there.")
    assert core.next_segment(core.epoch) is END_OF_INPUT
    synthesize(core, first)
    assert kinds(drain(core)) == ["SegmentStart", "EncodedFrame", "EncodedFrame", "SegmentEnd"]
    assert core.phase is Phase.OPEN  # the second segment is still being synthesized
    synthesize(core, second)
    assert core.synthesis_finished(core.epoch)
    sent = drain(core, now=2.0)
    assert kinds(sent) == ["SegmentStart", "EncodedFrame", "EncodedFrame", "SegmentEnd", "Done"]
    done = sent[-1]
    assert isinstance(done, Done)
    assert (done.segments, done.audio_ms, done.text_chars) == (2, 80.0, len("One here. Two there."))
    assert done.elapsed_ms == 2000.0
    assert core.phase is Phase.FINISHED and core.next_output(3.0) is None


def test_replies_overtake_queued_audio_but_not_each_other() -> None:
    core = make()
    drain(core)
    queued(core, "Hello there.", 3)
    core.reply(Error(code=ErrorCode.BAD_MESSAGE, message="first"))
    core.reply(Error(code=ErrorCode.BAD_MESSAGE, message="second"))
    sent = drain(core)
    assert [getattr(o, "message", None) for o in sent[:2]] == ["first", "second"]
    assert kinds(sent[2:]) == ["SegmentStart", "EncodedFrame", "EncodedFrame", "EncodedFrame", "SegmentEnd"]


def test_a_client_that_lets_replies_pile_up_overflows_the_control_lane() -> None:
    core = make()  # `ready` waits unread too
    for _ in range(CONTROL_LANE - 1):
        core.reply(Error(code=ErrorCode.BAD_MESSAGE, message="bad"))
    with pytest.raises(ControlOverflow):
        core.reply(Error(code=ErrorCode.BAD_MESSAGE, message="one too many"))


def test_done_counts_only_what_was_sent() -> None:
    core = make()
    drain(core)
    queued(core, "Hello there.", 3)
    core.next_output(0.0)  # handed out, never reported sent
    core.cancel(0.0)
    core.end(0.0)
    assert core.next_segment(core.epoch) is END_OF_INPUT
    assert core.synthesis_finished(core.epoch)
    sent = drain(core)
    assert kinds(sent) == ["Cancelled", "Done"]
    assert sent[-1] == Done(segments=0, audio_ms=0.0, text_chars=12, elapsed_ms=0.0)


# -- pacing --------------------------------------------------------------------------------------


def test_paced_audio_waits_for_real_time_and_a_reply_still_goes_at_once() -> None:
    core = make(max_lead_ms=40)
    drain(core)
    queued(core, "Hello there.", 5)
    # Up to the 40 ms lead ahead of real time, and one frame more (sent while at most the lead ahead).
    assert kinds(drain(core, 0.0)) == ["SegmentStart", "EncodedFrame", "EncodedFrame", "EncodedFrame"]
    assert core.next_output(0.0) == pytest.approx(0.020)  # the next frame is due 20 ms later
    core.reply(Cancelled())
    assert isinstance(core.next_output(0.0), Cancelled)  # not held back by pacing
    assert isinstance(core.next_output(0.0), float)
    assert core.next_output(0.020) == FRAME


def test_unpaced_audio_goes_as_fast_as_it_is_taken() -> None:
    core = make(max_lead_ms=0)
    drain(core)
    queued(core, "Hello there.", 50)
    assert kinds(drain(core, 0.0)).count("EncodedFrame") == 50


# -- backpressure and barge-in -------------------------------------------------------------------


def test_the_ring_bounds_what_synthesis_may_hand_over() -> None:
    core = make(ring_ms=60)
    drain(core)
    for _ in range(3):
        assert core.produce(core.epoch, FRAME, 20.0)
    assert not core.fits(20.0)
    assert core.fits(0.0)  # a segment_end still fits behind full audio
    assert core.next_output(0.0) == FRAME
    assert core.fits(20.0)


def test_cancel_drops_text_segments_and_audio_and_nothing_of_the_old_epoch_is_sent() -> None:
    core = make()
    drain(core)
    core.text("One here. Two there. Three", 0.0)
    old = core.epoch
    planned = core.next_segment(old)
    assert isinstance(planned, Planned)
    synthesize(core, planned)
    dropped = core.cancel(1.0)
    assert dropped == 4 and core.pending_chars == 0 and core.buffered_ms == 0
    assert core.epoch == old + 1
    # The old epoch's synthesis may still run until its cancellation arrives: it gets nothing.
    assert core.next_segment(old) is None
    assert not core.produce(old, FRAME, 20.0)
    assert not core.synthesis_finished(old)
    assert kinds(drain(core)) == ["Cancelled"]
    core.text("Fresh start.", 1.0)
    core.flush(1.0)
    fresh = core.next_segment(core.epoch)
    # Numbering goes on: the client can tell a segment after the barge-in from one before it.
    assert isinstance(fresh, Planned) and fresh.text == "Fresh start." and fresh.seq == 2


def test_cancel_after_end_still_finishes_with_done() -> None:
    core = make()
    drain(core)
    core.text("Hello there.", 0.0)
    core.end(0.0)
    core.cancel(0.0)
    assert core.next_segment(core.epoch) is END_OF_INPUT
    assert core.synthesis_finished(core.epoch)
    assert kinds(drain(core)) == ["Cancelled", "Done"]


def test_text_after_end_and_text_over_the_pending_limit_are_refused_and_change_nothing() -> None:
    core = make(max_pending_chars=20)
    core.text("Twelve chars", 0.0)
    with pytest.raises(ProtocolError) as refused:
        core.text("and nine more", 0.0)
    assert refused.value.code == ErrorCode.PENDING_TEXT_LIMIT
    assert core.pending_chars == 12 and core.stats.text_chars == 12
    core.end(0.0)
    with pytest.raises(ProtocolError) as ended:
        core.text("late", 0.0)
    assert ended.value.code == ErrorCode.STREAM_ENDED


def test_a_rate_limit_from_charge_refuses_the_text_and_keeps_nothing() -> None:
    def charge(chars: int) -> None:
        raise ProtocolError(ErrorCode.RATE_LIMITED, "slow down", retry_after_s=1.0)

    core = StreamCore(options(), CoreLimits(ring_ms=1000, max_pending_chars=1000), 0.0, charge=charge)
    with pytest.raises(ProtocolError):
        core.text("Hello there.", 0.0)
    assert core.pending_chars == 0 and core.stats.text_chars == 0


# -- config ----------------------------------------------------------------------------------------


def test_config_is_taken_only_before_any_other_command() -> None:
    core = make()
    core.reconfigure(options(voice="low", frame_ms=40), 0.0)
    sent = drain(core)
    assert [o.voice for o in sent if isinstance(o, Ready)] == ["beep", "low"]
    assert core.options.frame_ms == 40
    with pytest.raises(ProtocolError) as late:
        core.reconfigure(options(voice="beep"), 0.0)
    assert late.value.code == ErrorCode.CONFIG_TOO_LATE

    other = make()
    other.flush(0.0)
    with pytest.raises(ProtocolError):
        other.require_configurable()


def test_after_a_refused_config_no_text_is_taken_until_a_valid_config() -> None:
    core = make()
    drain(core)
    core.refuse_config()
    for command in (lambda: core.text("Hello there.", 0.0), lambda: core.flush(0.0), lambda: core.end(0.0)):
        with pytest.raises(ProtocolError) as refused:
            command()
        assert refused.value.code == ErrorCode.NOT_CONFIGURED
    assert core.pending_chars == 0 and core.stats.text_chars == 0 and not core.has_segments
    core.cancel(0.0)  # nothing to drop, and it does not use up the config
    core.reconfigure(options(voice="low"), 0.0)
    assert [type(o).__name__ for o in drain(core)] == ["Cancelled", "Ready"]
    queued(core, "Hello there.")
    assert core.stats.text_chars == len("Hello there.")
    with pytest.raises(ProtocolError) as late:
        core.require_configurable()
    assert late.value.code == ErrorCode.CONFIG_TOO_LATE


def test_text_in_a_script_the_language_does_not_cover_is_warned_of_once_per_script() -> None:
    core = make()
    drain(core)
    core.text("Hello there. 你好。Привет. 再见。", 0.0)
    core.flush(0.0)
    warnings = [o for o in drain(core) if isinstance(o, Warning)]
    assert [(w.code, w.seq) for w in warnings] == [(ErrorCode.UNSUPPORTED_SCRIPT, 1), (ErrorCode.UNSUPPORTED_SCRIPT, 2)]
    assert "Han" in warnings[0].message and "'en'" in warnings[0].message and "Cyrillic" in warnings[1].message
    chinese = make(language="zh")
    chinese.text("你好。", 0.0)
    chinese.flush(0.0)
    assert not [o for o in drain(chinese) if isinstance(o, Warning)]


def test_script_warnings_do_not_use_up_the_control_lane() -> None:
    # One letter each of 37 scripts an English voice does not read; no reply is read meanwhile.
    letters = "αяաשمܐހहঅਅઅଅஅఅಅഅඅกກཀကა한አᎠᐁᚁᚠកᠠあア中ꀀⴰꔀꚠ"
    core = make()
    core.text(letters + ".", 0.0)
    core.flush(0.0)
    for _ in range(CONTROL_LANE - 1):  # the first `ready` is unread too
        core.reply(Error(code=ErrorCode.BAD_MESSAGE, message="bad"))
    with pytest.raises(ControlOverflow):
        core.reply(Error(code=ErrorCode.BAD_MESSAGE, message="one too many"))
    sent = drain(core)
    assert sum(isinstance(o, Warning) for o in sent) == len(letters)
    assert sum(isinstance(o, Error) for o in sent) == CONTROL_LANE - 1


# -- deadlines -------------------------------------------------------------------------------------


def test_a_pending_sentence_end_is_taken_after_the_boundary_timeout() -> None:
    core = make(boundary_timeout_ms=150)
    core.text("We meet at 10 a.m.", 0.0)
    assert core.next_segment(core.epoch) is None  # "a.m." may go on
    assert core.next_deadline() == pytest.approx(0.150)
    core.tick(0.149)
    assert core.next_segment(core.epoch) is None
    core.tick(0.150)
    planned = core.next_segment(core.epoch)
    assert isinstance(planned, Planned) and planned.text == "We meet at 10 a.m."


def test_text_without_a_possible_sentence_end_is_not_flushed_by_the_deadline() -> None:
    core = make(boundary_timeout_ms=150)
    core.text("Hello wor", 0.0)
    core.tick(10.0)
    assert core.next_segment(core.epoch) is None
    core.text("ld. And more", 10.0)
    planned = core.next_segment(core.epoch)
    assert isinstance(planned, Planned) and planned.text == "Hello world."


def test_an_idle_stream_is_stopped_with_idle_timeout_but_a_busy_one_is_not() -> None:
    core = make(idle_timeout_s=30.0)
    drain(core)
    core.text("Hello there.", 0.0)
    core.flush(0.0)
    planned = core.next_segment(core.epoch)
    assert isinstance(planned, Planned)
    core.tick(30.0)  # the segment is still being synthesized: busy, not idle
    assert core.phase is Phase.OPEN
    synthesize(core, planned)
    drain(core, 31.0)
    assert core.next_deadline() == pytest.approx(61.0)
    core.tick(60.9)
    assert core.phase is Phase.OPEN
    core.tick(61.0)
    sent = drain(core, 61.0)
    assert kinds(sent) == ["Error", "Stopped"]
    assert sent[0].code == ErrorCode.IDLE_TIMEOUT and core.phase is Phase.FINISHED


def test_a_stream_is_stopped_at_its_longest_duration_even_while_busy() -> None:
    core = make(max_stream_s=5.0)
    core.text("Hello there.", 0.0)
    core.tick(5.0)
    assert core.phase is Phase.STOPPING
    assert core.pending_chars == 0  # what was queued is dropped
    sent = drain(core, 5.0)
    assert kinds(sent) == ["Ready", "Error", "Stopped"] and sent[1].code == ErrorCode.STREAM_TOO_LONG


def test_a_stopped_stream_whose_client_does_not_take_its_goodbye_is_abandoned() -> None:
    core = make()
    core.stop(ProtocolError(ErrorCode.SHUTTING_DOWN, "bye"), 10.0)
    assert core.next_deadline() == 10.0 + core_module.ABANDON_AFTER_S
    core.tick(10.0 + core_module.ABANDON_AFTER_S - 0.001)
    assert core.phase is Phase.STOPPING
    core.tick(10.0 + core_module.ABANDON_AFTER_S)
    assert core.phase is Phase.ABANDONED


def test_a_client_that_takes_its_goodbye_is_not_abandoned() -> None:
    core = make()
    core.stop(ProtocolError(ErrorCode.SHUTTING_DOWN, "bye"), 10.0)
    sent = drain(core, 10.0)
    assert kinds(sent) == ["Ready", "Error", "Stopped"]
    assert isinstance(sent[-1], Stopped) and sent[-1].reason.code == ErrorCode.SHUTTING_DOWN
    core.tick(100.0)
    assert core.phase is Phase.FINISHED and core.next_deadline() is None


def test_the_goodbye_overtakes_queued_audio_and_stopping_ignores_the_client() -> None:
    core = make()
    drain(core)
    queued(core, "Hello there.")
    core.stop(ProtocolError(ErrorCode.SHUTTING_DOWN, "bye"), 1.0)
    assert not core.produce(core.epoch, FRAME, 20.0)  # nothing more is taken
    assert core.cancel(1.0) == 0
    with pytest.raises(ProtocolError):
        core.text("more", 1.0)
    assert kinds(drain(core)) == ["Error", "Stopped"]


def test_stop_is_once_only() -> None:
    core = make()
    drain(core)
    core.stop(ProtocolError(ErrorCode.IDLE_TIMEOUT, "idle"), 0.0)
    core.stop(ProtocolError(ErrorCode.SHUTTING_DOWN, "bye"), 0.0)
    sent = drain(core)
    assert [o.code for o in sent if isinstance(o, Error)] == [ErrorCode.IDLE_TIMEOUT]


def test_close_releases_every_buffer() -> None:
    core = make()
    core.text("One here. Two there. Three", 0.0)
    planned = core.next_segment(core.epoch)
    assert isinstance(planned, Planned)
    synthesize(core, planned)
    core.close()
    assert core.pending_chars == 0 and core.buffered_items == 0 and core.next_output(0.0) is None


def test_warnings_and_segment_errors_travel_in_order_with_the_audio() -> None:
    core = make()
    drain(core)
    core.text("Hello there.", 0.0)
    core.flush(0.0)
    planned = core.next_segment(core.epoch)
    assert isinstance(planned, Planned)
    epoch = core.epoch
    core.produce(epoch, SegmentStart(0, planned.text))
    core.produce(epoch, FRAME, 20.0)
    core.produce(epoch, SegmentEnd(0, 20.0))
    core.produce(epoch, Warning(code=ErrorCode.PROVIDER_FALLBACK, message="fell back", seq=0))
    core.produce(epoch, Error(code=ErrorCode.PROVIDER_ERROR, message="failed", seq=0))
    assert kinds(drain(core)) == ["SegmentStart", "EncodedFrame", "SegmentEnd", "Warning", "Error"]
