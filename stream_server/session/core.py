"""One stream's rules, sans I/O: commands in, typed outputs out.

In the style of `websockets`' protocol objects: no asyncio, no sockets, no clock of its own (every
command takes `now`). The async runner (runner.py) and the transports only move data in and out:

- the client's commands: `text`, `flush`, `end`, `cancel`, `reconfigure`, and `reply` for an
  answer of the transport's own (an `error` for a bad message);
- the server's: `stop` (idle, too long, shutting down), and `tick` when a deadline is due;
- synthesis: `next_segment` hands out the segments to synthesize, `fits`/`produce` take what was
  synthesized into the ring (bounded in ms of audio: backpressure), tagged with the `epoch` it
  was made in, so that nothing made before a barge-in is ever sent;
- delivery: `next_output` says what to send now (control replies first, then the ring in order;
  word timings put on the stream's timeline as they go, spoken.py), or until when to wait
  (pacing to real time), and `sent` accounts for what went out.

It owns the order of everything a client gets, the control lane, pacing, the statistics in
`done`, when `done` is due, and the deadlines: a pending sentence end taken as one after a
pause in the text, the idle and duration limits, and how long a client the server stopped may
take to read its goodbye before it is dropped (`abandoned`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from ..buffer import AudioRing, Pacer
from ..media import EncodedFrame
from ..protocol import Error, ErrorCode, ProtocolError, SegmentEnd, Warning
from ..text import ScriptWatch, Segment, SentenceSegmenter
from . import notices
from .options import StreamOptions, ready_message
from .outputs import Output, Stopped, Synthesized
from .phase import ControlOverflow, Phase
from .planned import END_OF_INPUT, EndOfInput, Planned
from .spoken import SpokenWords, TextOffsets
from .stats import StreamStats
from .timeline import PendingAlignment

# Replies that may wait unread (a client flooding bad messages while not reading is cut off).
CONTROL_LANE: Final = 32
# Paced audio due within this long goes now: a timer that fires a hair early costs no second wait.
PACING_SLACK_S: Final = 0.001
# A stream the server stopped, whose client does not take its goodbye, is dropped after this long.
ABANDON_AFTER_S: Final = 5.0


class _StreamEnd:
    """Marks the end of synthesized output in the ring: `done` is due when it reaches the head."""


_STREAM_END: Final = _StreamEnd()


@dataclass(frozen=True, slots=True)
class CoreLimits:
    ring_ms: float
    max_pending_chars: int


class StreamCore:
    def __init__(
        self,
        options: StreamOptions,
        limits: CoreLimits,
        now: float,
        *,
        charge: Callable[[int], None] | None = None,
    ) -> None:
        """`charge(chars)` takes text from the client's allowance and raises `rate_limited`."""
        self._limits = limits
        self._charge = charge
        self.stats = StreamStats(started_at=now)
        self.epoch = 0
        self.phase = Phase.OPEN
        self._opened_at = now
        self._last_activity = now
        self._control: deque[Output] = deque()
        self._lane_warnings = 0
        """The server's own warnings in the control lane: not the client's unread replies."""
        self._segments: deque[Planned | EndOfInput] = deque()
        self._queued_chars = 0
        self._next_seq = 0
        self._input_ended = False
        self._accepted = False
        """A command was accepted: a `config` is too late now."""
        self._configured = True
        """False after a refused `config`: no text is taken until a valid one arrives, so no audio
        flows in a format the client did not ask for."""
        self._boundary_at: float | None = None
        self._abandon_at: float | None = None
        self._offsets = TextOffsets()
        self._configure(options)

    def _configure(self, options: StreamOptions) -> None:
        self.options = options
        self._segmenter = SentenceSegmenter(
            max_chars=options.max_segment_chars,
            max_bytes=options.max_segment_bytes,
            language=options.language,
            eager_first_segment=options.eager_first_segment or None,
        )
        self._scripts = ScriptWatch(options.language)
        self._ring: AudioRing[Synthesized | _StreamEnd] = AudioRing(self._limits.ring_ms, options.frame_ms)
        self._pacer = Pacer(options.max_lead_ms)
        self._spoken = SpokenWords(options.timestamps)
        self._control.append(ready_message(options))
        if options.timestamps != "none" and not options.provider_timestamps:
            self._warn(notices.timestamps_unavailable(options.provider))

    # -- state ---------------------------------------------------------------------------------

    @property
    def open(self) -> bool:
        """Still taking the client's commands (not stopped by the server, not finished)."""
        return self.phase is Phase.OPEN

    @property
    def input_ended(self) -> bool:
        return self._input_ended

    @property
    def has_segments(self) -> bool:
        """Segments (or the end of input) wait for synthesis."""
        return bool(self._segments)

    @property
    def planned_segments(self) -> int:
        """Segments planned so far (their `seq`s are 0 to this - 1)."""
        return self._next_seq

    @property
    def pending_chars(self) -> int:
        """Text accepted but not yet synthesized: still in the segmenter or queued as segments."""
        return self._segmenter.pending_chars + self._queued_chars

    @property
    def uncut_chars(self) -> int:
        """The last characters of the text accepted that are not in a planned segment yet."""
        return self._segmenter.pending_chars

    @property
    def buffered_ms(self) -> float:
        """Audio synthesized and not yet handed out for sending."""
        return self._ring.buffered_ms

    @property
    def buffered_items(self) -> int:
        return len(self._ring)

    def ahead_ms(self, now: float) -> float:
        """Audio made and not yet played: in the ring, and sent ahead of real time."""
        sent_ahead = 0.0
        if self.stats.first_audio_at is not None:
            sent_ahead = max(0.0, self.stats.audio_ms - (now - self.stats.first_audio_at) * 1000.0)
        return self._ring.buffered_ms + sent_ahead

    def idle_s(self, now: float) -> float:
        """How long the stream has been waiting for text with nothing to do (0 when busy).

        Busy: text queued for synthesis, or audio waiting to be sent; after `end` the stream
        finishes by itself. Text held back for a sentence end counts as waiting.
        """
        if self._input_ended or self._queued_chars or len(self._ring):
            return 0.0
        return now - self._last_activity

    # -- the client's commands -----------------------------------------------------------------

    def check_text(self, text: str) -> None:
        """Raises what `text` would (stream_ended, pending_text_limit), short of the charge: the
        runner asks before it charges text to a client's limits that have to be waited on."""
        self._require_input()
        self._require_configured()
        limit = self._limits.max_pending_chars
        if self.pending_chars + len(text) > limit:
            raise ProtocolError(
                ErrorCode.PENDING_TEXT_LIMIT,
                f"the stream already holds {self.pending_chars} characters not yet synthesized "
                f"(limit {limit}); this text was dropped",
            )

    def text(self, text: str, now: float) -> None:
        """Raises `ProtocolError` (stream_ended, pending_text_limit, or the client's
        `rate_limited` from `charge`); refused text changes nothing."""
        self._last_activity = now
        self.check_text(text)
        if self._charge is not None:
            self._charge(len(text))
        self._accepted = True
        self.stats.text_chars += len(text)
        self._offsets.received(text)
        self._plan(self._segmenter.push(text), now)
        # A possible sentence end ("...at 10 a.m.") is taken as one after a pause in the text.
        timeout = self.options.boundary_timeout_ms
        pending = timeout and self._segmenter.pending_boundary
        self._boundary_at = now + timeout / 1000.0 if pending else None

    def flush(self, now: float) -> None:
        self._last_activity = now
        self._require_input()
        self._require_configured()
        self._accepted = True
        self._plan(self._segmenter.flush(), now)
        self._boundary_at = None

    def end(self, now: float) -> None:
        self._last_activity = now
        self._require_input()
        self._require_configured()
        self._accepted = True
        self._plan(self._segmenter.flush(), now)
        self._boundary_at = None
        self._input_ended = True
        self._segments.append(END_OF_INPUT)

    def cancel(self, now: float, played_ms: float | None = None) -> int:
        """Barge-in: drop buffered text, pending segments and queued audio; returns the outputs
        dropped. Synthesis of the old epoch may still be running: nothing it makes is taken.
        After `end`, the stream still finishes with `done`. `played_ms`: the client's playback
        position, for the `cancelled` reply's last word heard."""
        self._last_activity = now
        if not self.open:
            return 0
        self._accepted = True
        dropped = self._drop_everything()
        if self._input_ended:
            self._segments.append(END_OF_INPUT)
        self._pacer.reset()
        self.reply(self._spoken.cancelled(self.stats.audio_ms, played_ms))
        return dropped

    def reconfigure(self, options: StreamOptions, now: float) -> None:
        """Other options (a `config` message), before the stream did anything: a new `ready`."""
        self._last_activity = now
        self.require_configurable()
        self._accepted = True
        self._drop_everything()
        self._configured = True
        self._configure(options)

    def refuse_config(self) -> None:
        """A `config` was refused: the stream refuses text, flush and end (`not_configured`) until
        a valid `config` arrives, not to send audio in a format the client did not ask for."""
        self._configured = False

    def require_configurable(self) -> None:
        """Raises `config_too_late` once a command was accepted (or input is over).

        An unconfigured stream still takes a `config`: the only command it accepted is a `cancel`,
        which had nothing to drop."""
        if self._accepted and self._configured:
            raise ProtocolError(ErrorCode.CONFIG_TOO_LATE, "config is only accepted as the first message")
        self._require_input()

    def reply(self, message: Output) -> None:
        """An answer ahead of queued audio (`ready`, an `error` for a bad message, `cancelled`).

        Raises `ControlOverflow` when the client lets too many pile up unread."""
        if len(self._control) - self._lane_warnings >= CONTROL_LANE:
            raise ControlOverflow(f"more than {CONTROL_LANE} unread replies")
        self._control.append(message)

    def keep_alive(self, now: float) -> None:
        """Activity elsewhere on the stream's connection (another context of its socket): the
        stream does not idle while the connection it answers for is busy."""
        self._last_activity = now

    def close(self) -> None:
        """The stream is over (finished, or its client went away): release every buffer."""
        self._drop_everything()
        self._control.clear()
        self._lane_warnings = 0
        if self.phase is not Phase.ABANDONED:
            self.phase = Phase.FINISHED

    # -- the server's commands -----------------------------------------------------------------

    def stop(self, reason: ProtocolError, now: float) -> None:
        """End the stream early: drop what is queued, say why (ahead of any audio), then `Stopped`.

        A client that has not taken that goodbye `ABANDON_AFTER_S` later (it stopped reading)
        is dropped, so it cannot keep its slot."""
        if not self.open:
            return
        self._drop_everything()
        self._input_ended = True
        self.phase = Phase.STOPPING
        # The goodbye goes even past a full control lane: it is the last thing ever queued.
        self._control.append(Error(code=reason.code, message=reason.message))
        self._control.append(Stopped(reason))
        self._abandon_at = now + ABANDON_AFTER_S

    def next_deadline(self) -> float | None:
        """When `tick` has something to check next (None: nothing until the next command)."""
        if self.phase is Phase.STOPPING:
            return self._abandon_at
        if self.phase is not Phase.OPEN:
            return None
        deadlines = [self._opened_at + self.options.max_stream_s, self._last_activity + self.options.idle_timeout_s]
        if self._boundary_at is not None:
            deadlines.append(self._boundary_at)
        return min(deadlines)

    def tick(self, now: float) -> None:
        """Act on the deadlines due at `now`."""
        if self.phase is Phase.STOPPING:
            if self._abandon_at is not None and now >= self._abandon_at:
                self.phase = Phase.ABANDONED
            return
        if self.phase is not Phase.OPEN:
            return
        if self._boundary_at is not None and now >= self._boundary_at:
            self._boundary_at = None
            if not self._input_ended and self._segmenter.pending_boundary:
                self._plan(self._segmenter.flush(), now)
        options = self.options
        if now - self._opened_at >= options.max_stream_s:
            self.stop(ProtocolError(ErrorCode.STREAM_TOO_LONG, f"streams last at most {options.max_stream_s:g} s"), now)
        elif now - self._last_activity >= options.idle_timeout_s:
            if self.idle_s(now) >= options.idle_timeout_s:
                self.stop(ProtocolError(ErrorCode.IDLE_TIMEOUT, f"no text for {options.idle_timeout_s:g} s"), now)
            else:
                self._last_activity = now  # busy: the idle time counts from when it has nothing to do

    # -- synthesis -------------------------------------------------------------------------------

    def next_segment(self, epoch: int) -> Planned | EndOfInput | None:
        """The next segment to synthesize in `epoch`, `END_OF_INPUT` after the last, or None (none
        yet, or `epoch` is over: its synthesis may run on until its cancellation arrives)."""
        return self._segments.popleft() if self._segments and epoch == self.epoch else None

    def provider_audio(self, now: float) -> None:
        """A provider's audio arrived (for `done`'s `provider_ms`: the first one counts)."""
        if self.stats.first_chunk_at is None:
            self.stats.first_chunk_at = now

    def fits(self, ms: float = 0.0) -> bool:
        """Whether output weighing `ms` of audio has room in the ring now."""
        return self._ring.fits(ms)

    def produce(self, epoch: int, output: Synthesized, ms: float = 0.0) -> bool:
        """Take synthesized output into the ring (after `fits`); output of an earlier epoch (made
        before a barge-in or a stop) is dropped. Returns whether it was taken."""
        if epoch != self.epoch or not self.open:
            return False
        self._ring.push(output, ms)
        return True

    def segment_done(self, epoch: int, planned: Planned) -> None:
        if epoch == self.epoch:
            self._queued_chars = max(0, self._queued_chars - len(planned.text))
            self.stats.segments_synthesized += 1

    def synthesis_finished(self, epoch: int) -> bool:
        """Every segment of the input is in the ring: `done` follows the last of it."""
        if epoch != self.epoch or not self.open:
            return False
        self._ring.push(_STREAM_END)
        return True

    # -- delivery ---------------------------------------------------------------------------------

    def next_output(self, now: float) -> Output | float | None:
        """What to send now; or, when audio must wait for real time to catch up, the time to ask
        again; or None when there is nothing to send yet."""
        if self._control:
            output = self._control.popleft()
            if type(output) is Warning:
                self._lane_warnings -= 1
            if type(output) is Stopped:
                self.phase = Phase.FINISHED
            return output
        while self._ring and self.phase is Phase.OPEN:
            head = self._ring.peek()
            if type(head) is EncodedFrame and (delay := self._pacer.delay(now)) > PACING_SLACK_S:
                return now + delay
            self._ring.pop()
            if type(head) is _StreamEnd:
                self.phase = Phase.FINISHED
                return self.stats.done_message(now)
            if type(head) is PendingAlignment:
                # Timed from the audio after it: the audio sent so far puts it on the stream's timeline.
                alignment = self._spoken.delivered(head, self.stats.audio_ms)
                if alignment is None:
                    continue  # recorded for `cancelled`; the client did not ask for it
                return alignment
            return head  # type: ignore[return-value]  # the ring holds outputs and one _StreamEnd
        return None

    def sent(self, output: Output, now: float) -> None:
        """The transport has sent `output`."""
        self._last_activity = now
        if type(output) is EncodedFrame:
            if self.stats.first_audio_at is None:
                self.stats.first_audio_at = now
            self.stats.audio_ms += output.duration_ms
            self._pacer.sent(output.duration_ms)
        elif type(output) is SegmentEnd:
            self.stats.segments += 1

    # -- internals ---------------------------------------------------------------------------------

    def _require_input(self) -> None:
        if self._input_ended or not self.open:
            raise ProtocolError(ErrorCode.STREAM_ENDED, "input has ended; no more text is accepted")

    def _require_configured(self) -> None:
        if not self._configured:
            raise ProtocolError(
                ErrorCode.NOT_CONFIGURED, "the last config was refused: send a valid config before any text"
            )

    def _plan(self, segments: list[Segment], now: float) -> None:
        for segment in segments:
            if self.stats.first_segment_at is None:
                self.stats.first_segment_at = now
            self._segments.append(Planned(self._next_seq, segment, self._offsets.planned(segment.text)))
            self._warn_of_scripts(segment.text, self._next_seq)
            self._next_seq += 1
            self._queued_chars += len(segment.text)
        self._offsets.settle(self._segmenter.pending_chars)

    def _warn_of_scripts(self, text: str, seq: int) -> None:
        """A `warning` for each script the stream's language does not cover, the first time."""
        for script in self._scripts.new_scripts(text):
            self._warn(notices.unsupported_script(script, self.options.language, seq))

    def _warn(self, warning: Warning) -> None:
        # Outside the control lane's bound (which counts the client's unread replies): bounded
        # by the kinds there are (notices.py).
        self._lane_warnings += 1
        self._control.append(warning)

    def _drop_everything(self) -> int:
        """A new epoch: what is queued or being synthesized now is never sent."""
        self.epoch += 1
        dropped = self._ring.clear()
        self._segments.clear()
        self._segmenter.reset()
        self._offsets.settle(0)
        self._queued_chars = 0
        self._boundary_at = None
        return dropped
