"""One call: Twilio's media stream on one side, one stream_server stream on the other.

Three activities run per call: reading the server (`segment`, audio, `segment_end`, `cancelled`)
into a bounded playout queue, pacing that queue out to Twilio as `media` frames with a `mark` after
each segment, and reading Twilio (`media`, `mark` echoes, `dtmf`, `stop`). A barge-in bumps the
playout *generation* under the Twilio send lock, so nothing queued or produced before it can be
sent after its `clear`; audio the server sends between our `cancel` and its `cancelled` is dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

import msgspec
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.exceptions import ConnectionClosed

from ..python.messages import (
    Alignment,
    Cancel,
    Cancelled,
    Done,
    End,
    Error,
    Flush,
    SegmentEnd,
    SegmentStart,
    Text,
    Warning,
)
from .ledger import HeardReport, SegmentLedger, SegmentRecord, TimedWord, mark_name
from .options import BridgeOptions
from .playout import Framer, PlayoutClock
from .twilio_protocol import (
    FRAME_MS,
    SAMPLE_RATE,
    Clear,
    Dtmf,
    InboundMark,
    InboundMedia,
    InboundMessage,
    Mark,
    MarkName,
    StartInfo,
    Stop,
    encode,
    media_message,
)
from .upstream import UpstreamStream

log = logging.getLogger(__name__)

MAX_KEPT_DTMF = 64
MAX_KEPT_ERRORS = 20


@dataclass(frozen=True)
class _SegmentStarts:
    generation: int
    seq: int


@dataclass(frozen=True)
class _FrameOut:
    generation: int
    seq: int
    frame: bytes


@dataclass(frozen=True)
class _SegmentEnds:
    generation: int
    seq: int


_PlayoutItem = _SegmentStarts | _FrameOut | _SegmentEnds


class CallConflict(Exception):
    """The call cannot take this request now (input ended, server stream gone)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


UpstreamOutcome = Literal["cancelled", "timeout", "closed"]


class BargeIn(msgspec.Struct, kw_only=True):
    call_sid: str
    stream_sid: str
    upstream: UpstreamOutcome
    """`cancelled`: the server confirmed; `closed`: its stream had already ended; `timeout`: no answer."""
    interrupted: list[SegmentRecord]
    """The segments this barge-in settled (partly or not heard, or heard by the clock), in order,
    including the segments and text the server dropped."""
    report: HeardReport
    """Every segment of the call so far, by what the caller heard."""


class CallState(msgspec.Struct, kw_only=True):
    call_sid: str
    stream_sid: str
    input_ended: bool
    upstream_done: bool
    upstream_closed: bool
    played_ms: float
    ahead_ms: float
    inbound_media_frames: int
    marks_echoed: int
    barge_ins: int
    dtmf: list[str]
    errors: list[str]
    segments: list[SegmentRecord]
    report: HeardReport


class Call:
    def __init__(self, start: StartInfo, websocket: WebSocket, upstream: UpstreamStream, options: BridgeOptions):
        self.call_sid = start.call_sid
        self.stream_sid = start.stream_sid
        self._websocket = websocket
        self._upstream = upstream
        self._options = options
        self._clock = PlayoutClock(options.lead_ms)
        self._ledger = SegmentLedger()
        self._framer = Framer()
        self._queue: asyncio.Queue[_PlayoutItem] = asyncio.Queue(options.queue_frames)
        # Twilio sends and the generation bump of a barge-in happen under this lock.
        self._send_lock = asyncio.Lock()
        self._generation = 0
        self._cancels_pending = 0
        self._cancels_settled = asyncio.Event()
        self._cancels_settled.set()
        self.input_ended = False
        self.upstream_done = False
        self.upstream_closed = False
        self.inbound_media_frames = 0
        self.marks_echoed = 0
        self.barge_ins = 0
        self.dtmf: deque[str] = deque(maxlen=MAX_KEPT_DTMF)
        self.errors: deque[str] = deque(maxlen=MAX_KEPT_ERRORS)

    # --- lifetime -------------------------------------------------------------------------------

    async def run(self, inbound: AsyncIterator[InboundMessage]) -> None:
        """Until Twilio sends `stop` or closes; then the server stream is closed too."""
        tasks = [
            asyncio.create_task(self._pump_upstream(), name=f"upstream {self.call_sid}"),
            asyncio.create_task(self._play_out(), name=f"playout {self.call_sid}"),
        ]
        for task in tasks:
            task.add_done_callback(_log_failure)
        try:
            async for message in inbound:
                if isinstance(message, Stop):
                    log.info("call %s: stop", self.call_sid)
                    break
                self._on_twilio(message)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._upstream.close()

    def _on_twilio(self, message: InboundMessage) -> None:
        if isinstance(message, InboundMedia):
            # The caller's audio: the bot hears the caller elsewhere (its own STT); we only count it.
            self.inbound_media_frames += 1
        elif isinstance(message, InboundMark):
            if self._ledger.mark_echoed(message.mark.name) is not None:
                self.marks_echoed += 1
        elif isinstance(message, Dtmf):
            self.dtmf.append(message.dtmf.digit)

    # --- server → queue -------------------------------------------------------------------------

    async def _pump_upstream(self) -> None:
        current_seq: int | None = None
        # The server's timeline (its audio so far, as `alignment` times count it) and where the
        # current segment began on it: a word's offset in its segment is its time minus that.
        server_ms = segment_at_ms = 0.0
        async for event in self._upstream.events():
            if isinstance(event, bytes):
                server_ms += 1000.0 * len(event) / SAMPLE_RATE  # μ-law: a byte a sample
            elif isinstance(event, SegmentStart):
                segment_at_ms = server_ms
            if isinstance(event, Cancelled):
                self._cancels_pending = max(0, self._cancels_pending - 1)
                if self._cancels_pending == 0:
                    self._framer.reset()
                    current_seq = None
                    self._ledger.drop_unsegmented()
                    self._cancels_settled.set()
                continue
            if self._cancels_pending:
                # Sent before the server took our cancel: never played, but still accounted for.
                if isinstance(event, SegmentStart):
                    self._ledger.announce(event.seq, event.text, stale=True)
                continue
            # One generation for everything this event yields, even if a barge-in comes mid-way.
            generation = self._generation
            if isinstance(event, bytes):
                if current_seq is None:
                    log.warning("call %s: audio outside a segment dropped", self.call_sid)
                    continue
                for frame in self._framer.push(event):
                    await self._queue.put(_FrameOut(generation, current_seq, frame))
            elif isinstance(event, SegmentStart):
                current_seq = event.seq
                self._framer.reset()
                self._ledger.announce(event.seq, event.text)
                await self._queue.put(_SegmentStarts(generation, event.seq))
            elif isinstance(event, Alignment):
                words = [TimedWord(text=w.text, offset_ms=w.start_ms - segment_at_ms) for w in event.words]
                self._ledger.timed(event.seq, words)
            elif isinstance(event, SegmentEnd):
                last = self._framer.finish()
                if last is not None and current_seq is not None:
                    await self._queue.put(_FrameOut(generation, current_seq, last))
                await self._queue.put(_SegmentEnds(generation, event.seq))
                current_seq = None
            elif isinstance(event, Done):
                self.upstream_done = True
            elif isinstance(event, Error):
                self.errors.append(f"{event.code}: {event.message}")
                log.warning("call %s: server error %s: %s", self.call_sid, event.code, event.message)
            elif isinstance(event, Warning):
                log.info("call %s: server warning %s: %s", self.call_sid, event.code, event.message)
        self.upstream_closed = True
        self._cancels_settled.set()  # no `cancelled` will come any more

    # --- queue → Twilio -------------------------------------------------------------------------

    async def _play_out(self) -> None:
        while True:
            item = await self._queue.get()
            if item.generation != self._generation:
                continue
            if isinstance(item, _SegmentStarts):
                self._ledger.started(item.seq, self._clock.sent_ms)
            elif isinstance(item, _FrameOut):
                while (delay := self._clock.delay_s()) > 0:
                    await asyncio.sleep(delay)  # pacing: wait for Twilio's playback to catch up
                async with self._send_lock:
                    if item.generation != self._generation:
                        continue
                    await self._websocket.send_text(media_message(self.stream_sid, item.frame))
                    self._clock.sent(FRAME_MS)
                    self._ledger.add_audio(item.seq, FRAME_MS)
            else:
                async with self._send_lock:
                    if item.generation != self._generation:
                        continue
                    await self._websocket.send_text(encode(Mark(self.stream_sid, MarkName(mark_name(item.seq)))))
                    self._ledger.sent_fully(item.seq)

    # --- the bot's requests ---------------------------------------------------------------------

    async def say(self, text: str, flush: bool) -> None:
        self._check_open()
        self._ledger.given(text)  # before sending: the server's `segment` for it may come at once
        try:
            await self._upstream.send(Text(text))
            if flush:
                await self._upstream.send(Flush())
        except ConnectionClosed:
            raise CallConflict("upstream_closed", "the speech server closed this call's stream") from None

    async def end_input(self) -> None:
        self._check_open()
        self.input_ended = True
        try:
            await self._upstream.send(End())
        except ConnectionClosed:
            raise CallConflict("upstream_closed", "the speech server closed this call's stream") from None

    async def barge_in(self) -> BargeIn:
        """Stop playback now (`clear`), drop everything queued, cancel the server's output."""
        async with self._send_lock:
            self._generation += 1
            interrupted = self._ledger.interrupt(self._clock.played_ms())
            self._clock.cleared()
            self._framer.reset()
            while not self._queue.empty():
                self._queue.get_nowait()
            self.barge_ins += 1
            cancel_upstream = not self.upstream_closed
            if cancel_upstream:
                self._cancels_pending += 1
                self._cancels_settled.clear()
            try:
                await self._websocket.send_text(encode(Clear(self.stream_sid)))
            except (WebSocketDisconnect, RuntimeError):
                raise CallConflict("call_ended", "Twilio's media stream of this call has closed") from None
        outcome: UpstreamOutcome = "closed"
        if cancel_upstream:
            outcome = await self._cancel_upstream()
        # After `cancelled` this only returns what was settled; without one (the server's stream
        # ended, or no answer in time) the server will not cut the text it was given any more.
        interrupted = self._ledger.drop_unsegmented()
        log.info("call %s: barge-in, %d segment(s) interrupted, upstream %s", self.call_sid, len(interrupted), outcome)
        return BargeIn(
            call_sid=self.call_sid,
            stream_sid=self.stream_sid,
            upstream=outcome,
            interrupted=interrupted,
            report=self._ledger.report(),
        )

    async def _cancel_upstream(self) -> UpstreamOutcome:
        try:
            await self._upstream.send(Cancel())
            async with asyncio.timeout(self._options.cancel_timeout_s):
                await self._cancels_settled.wait()
        except ConnectionClosed:
            return "closed"
        except TimeoutError:
            log.warning(
                "call %s: no `cancelled` from the server in %.1f s", self.call_sid, self._options.cancel_timeout_s
            )
            return "timeout"
        return "closed" if self.upstream_closed and self._cancels_pending else "cancelled"

    def _check_open(self) -> None:
        if self.input_ended:
            raise CallConflict("input_ended", "this call's text has ended (POST .../end was called)")
        if self.upstream_closed:
            raise CallConflict("upstream_closed", "the speech server closed this call's stream")

    def state(self) -> CallState:
        return CallState(
            call_sid=self.call_sid,
            stream_sid=self.stream_sid,
            input_ended=self.input_ended,
            upstream_done=self.upstream_done,
            upstream_closed=self.upstream_closed,
            played_ms=round(self._clock.played_ms(), 3),
            ahead_ms=round(self._clock.ahead_ms(), 3),
            inbound_media_frames=self.inbound_media_frames,
            marks_echoed=self.marks_echoed,
            barge_ins=self.barge_ins,
            dtmf=list(self.dtmf),
            errors=list(self.errors),
            segments=self._ledger.records(),
            report=self._ledger.report(),
        )


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s failed", task.get_name(), exc_info=task.exception())
