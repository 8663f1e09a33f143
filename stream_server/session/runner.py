"""The async side of one stream: the only place that waits on synthesis, the clock and the client.

`Stream` wraps a `StreamCore`. A transport calls its commands (`text`, `flush`, `end`, `cancel`,
`reconfigure`, `reply`; the server calls `stop`) and runs `run(send)` inside its connection's
task group; `run` owns three tasks in a task group of its own:

- delivery: asks the core what to send next, waits where the core says (nothing yet, or pacing),
  awaits `send` (the transport's renderer), and tells the core it was sent;
- synthesis: one `Synthesis` per epoch, in a cancel scope that a barge-in, a new config or a stop
  cancels (the core drops whatever a cancelled epoch still hands it);
- the deadlines: sleeps until the core's next deadline and ticks it; a stopped stream whose client
  does not take its goodbye in time is abandoned (the scope is cancelled).

`run` returns when the last output was sent, or the stream was abandoned, or the client went away;
cancelling the caller's scope stops everything.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import time
from collections.abc import Awaitable, Callable

import anyio
import msgspec

from ..logs import log_event
from ..media import EncodedFrame
from ..metrics import Metrics
from ..protocol import Done, ProtocolError
from .core import Phase, StreamCore
from .options import StreamOptions
from .outputs import Output, Stopped, Synthesized
from .planned import EndOfInput, Planned
from .stats import StreamStats
from .synthesis import Synthesis

logger = logging.getLogger(__name__)

# Outputs delivered back to back before the event loop gets a turn.
SENDS_PER_TURN = 8

Send = Callable[[Output], Awaitable[None]]
"""A transport's renderer: writes one output in its wire format. Raises `ClientGone` when the
client went away."""

SynthesisFactory = Callable[["Stream", int, StreamOptions], Synthesis]
"""Builds the synthesis of one epoch for a stream's current options (session/factory.py)."""


class ClientGone(Exception):
    """The client went away while the stream was sending to it."""


class Outcome(enum.Enum):
    DONE = "done"
    """Every output was sent, `done` last."""
    STOPPED = "stopped"
    """The server ended the stream and the client got its goodbye."""
    ABANDONED = "abandoned"
    """The server ended the stream and the client did not read its goodbye in time."""
    GONE = "gone"
    """The client went away."""


class _Signal:
    """Wakes one waiter: set by whoever changed something, cleared when the waiter wakes."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self, timeout_s: float | None = None) -> None:
        """Until set (or `timeout_s` passed: a deadline, not a race fix)."""
        if timeout_s is None:
            await self._event.wait()
        else:
            timer = asyncio.get_running_loop().call_later(timeout_s, self._event.set)
            try:
                await self._event.wait()
            finally:
                timer.cancel()
        self._event.clear()


class Stream:
    def __init__(
        self,
        core: StreamCore,
        synthesis: SynthesisFactory,
        *,
        stream_id: str,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        charge: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        """`charge(chars)` takes text from the client's allowance (which may be in Redis: it is
        awaited) and raises `rate_limited`."""
        self.core = core
        self._charge = charge
        self.id = stream_id
        self._make_synthesis = synthesis
        self._metrics = metrics
        self._clock = clock
        self._output = _Signal()
        self._room = _Signal()
        self._segments = _Signal()
        self._deadlines = _Signal()
        self._epoch_scope: anyio.CancelScope | None = None
        self._watching_until = -math.inf
        """The deadline the watcher sleeps until (inf: none): an earlier one must wake it."""
        self.backpressured = False
        """Synthesis waits for the client to take audio (the ring is full)."""

    @property
    def options(self) -> StreamOptions:
        return self.core.options

    @property
    def stats(self) -> StreamStats:
        return self.core.stats

    @property
    def pending_chars(self) -> int:
        return self.core.pending_chars

    # -- commands: the core decides, then whoever waits is woken --------------------------------

    async def text(self, text: str) -> None:
        """Raises `ProtocolError` (see `StreamCore.text`; `rate_limited` from `charge`): refused
        text changes nothing."""
        if self._charge is not None and text:
            self.core.check_text(text)  # what would be refused anyway is not charged
            await self._charge(len(text))
        self.core.text(text, self._clock())
        self._input_changed()

    def flush(self) -> None:
        self.core.flush(self._clock())
        self._input_changed()

    def end(self) -> None:
        self.core.end(self._clock())
        self._input_changed()

    def cancel(self, played_ms: float | None = None) -> int:
        """Barge-in: when this returns, nothing made before it can be sent. `played_ms`: the
        client's playback position (the `cancelled` reply names the last word heard)."""
        dropped = self.core.cancel(self._clock(), played_ms)
        if self._metrics is not None:
            self._metrics.cancels.inc()
        log_event(logger, "stream.cancel", stream=self.id, dropped_items=dropped)
        self._new_epoch()
        return dropped

    def reconfigure(self, options: StreamOptions) -> None:
        self.core.reconfigure(options, self._clock())
        self._new_epoch()

    def keep_alive(self) -> None:
        """Activity elsewhere on this stream's connection: no idle timeout while it lasts."""
        self.core.keep_alive(self._clock())

    def reply(self, message: Output) -> None:
        self.core.reply(message)
        self._output.set()

    def stop(self, reason: ProtocolError) -> None:
        """The server ends the stream: its goodbye is queued; no network I/O here."""
        if self.core.open:
            log_event(logger, "stream.stopped", stream=self.id, code=reason.code)
        self.core.stop(reason, self._clock())
        self._new_epoch()

    def close(self) -> None:
        """Release every buffer; the tasks of `run` end with the scope it runs in."""
        self.core.close()
        self._new_epoch()

    def _input_changed(self) -> None:
        # Most text completes no segment and moves no deadline earlier: then nobody is woken.
        if self.core.has_segments:
            self._segments.set()
        deadline = self.core.next_deadline()
        if deadline is not None and deadline < self._watching_until:
            self._deadlines.set()

    def _new_epoch(self) -> None:
        if self._epoch_scope is not None:
            self._epoch_scope.cancel()
        self._segments.set()
        self._deadlines.set()
        self._output.set()
        self._room.set()

    # -- running --------------------------------------------------------------------------------

    async def run(self, send: Send) -> Outcome:
        outcome = Outcome.ABANDONED  # unless delivery ends first
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._synthesize, name=f"synthesis-{self.id}")
            tasks.start_soon(self._watch_deadlines, tasks.cancel_scope, name=f"deadlines-{self.id}")
            try:
                outcome = await self._deliver(send)
            except ClientGone:
                outcome = Outcome.GONE
            tasks.cancel_scope.cancel()
        if outcome is Outcome.ABANDONED:
            log_event(logger, "stream.abandoned", level=logging.WARNING, stream=self.id)
        return outcome

    async def _deliver(self, send: Send) -> Outcome:
        core, clock, metrics = self.core, self._clock, self._metrics
        unbroken = 0
        while True:
            now = clock()
            output = core.next_output(now)
            if output is None:
                await self._output.wait()
                unbroken = 0
                continue
            if type(output) is float:
                await self._output.wait(output - now)  # pacing to real time; a reply wakes it early
                unbroken = 0
                continue
            await send(output)  # type: ignore[arg-type]  # the float case is handled above
            unbroken += 1
            if unbroken >= SENDS_PER_TURN:
                # A send that the socket takes at once does not give the event loop a turn: an
                # unpaced stream with a full ring would hold it, and would not hear that its
                # client went away (the transport's connection_lost waits for a turn) until
                # its ring is empty.
                await asyncio.sleep(0)
                unbroken = 0
            first_audio = core.stats.first_audio_at is None
            core.sent(output, clock())  # type: ignore[arg-type]
            if self.backpressured:
                self._room.set()
            if type(output) is EncodedFrame:
                if metrics is not None:
                    metrics.frames.inc()
                    metrics.bytes.inc(len(output.data))
                    if first_audio and (ttfa := core.stats.ttfa_s) is not None:
                        metrics.ttfa.observe(ttfa)
            elif type(output) is Done:
                log_event(logger, "stream.done", stream=self.id, **msgspec.structs.asdict(output))
                return Outcome.DONE
            elif type(output) is Stopped:
                return Outcome.STOPPED

    async def _synthesize(self) -> None:
        while self.core.open:
            epoch = self.core.epoch
            with anyio.CancelScope() as scope:
                self._epoch_scope = scope
                await self._make_synthesis(self, epoch, self.core.options).run()
                await anyio.sleep_forever()  # this epoch's work is done: wait to be replaced
            # Cancelled: a barge-in, a new config or a stop began a new epoch.

    async def _watch_deadlines(self, scope: anyio.CancelScope) -> None:
        core = self.core
        while True:
            deadline = core.next_deadline()
            now = self._clock()
            if deadline is None or deadline > now:
                self._watching_until = math.inf if deadline is None else deadline
                await self._deadlines.wait(None if deadline is None else deadline - now)
                self._watching_until = -math.inf
                continue
            epoch = core.epoch
            core.tick(now)
            if core.phase is Phase.ABANDONED:
                scope.cancel()
                return
            if core.epoch != epoch:
                self._new_epoch()  # stopped (idle, too long)
            else:
                self._segments.set()  # a pending sentence end may have been taken as one

    # -- the synthesis side (synthesis.Sink) ----------------------------------------------------

    async def next_segment(self, epoch: int) -> Planned | EndOfInput:
        while (planned := self.core.next_segment(epoch)) is None:
            if epoch != self.core.epoch:
                await anyio.sleep_forever()  # a new epoch began: this one's cancellation is on its way
            await self._segments.wait()
        return planned

    async def put(self, epoch: int, output: Synthesized, ms: float = 0.0) -> None:
        core = self.core
        if not core.fits(ms) and epoch == core.epoch:
            if self._metrics is not None:
                self._metrics.ring_waits.inc()
            self.backpressured = True
            try:
                while not core.fits(ms) and epoch == core.epoch:
                    await self._room.wait()
            finally:
                self.backpressured = False
        if core.produce(epoch, output, ms):
            self._output.set()

    def segment_done(self, epoch: int, planned: Planned) -> None:
        self.core.segment_done(epoch, planned)

    def finished(self, epoch: int) -> None:
        if self.core.synthesis_finished(epoch):
            self._output.set()

    def provider_audio(self) -> None:
        self.core.provider_audio(self._clock())

    def ahead_ms(self) -> float:
        return self.core.ahead_ms(self._clock())

