"""An SSE session's numbered events, and a reader following them.

Events already handed to a reader stay for `--sse-resume-ms` of audio, so a client that
reconnects with `Last-Event-ID` gets exactly what it missed; the rest of the log is what the
stream handed over ahead of its readers, which the writer keeps small (`wait_room`). The server
may `forget` a finished session's events (its budget for them, `SseSessions`): a resume then gets
`resume_unavailable`, as it does for events older than the resume window.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

import msgspec

from ..protocol import ErrorCode
from ..protocol.sse import KEEPALIVE, SseEvent

# Events kept for resuming, whatever their audio: bounds the log's control events too.
MAX_LOG_EVENTS = 4096
# What keeping one event costs besides its data: the event object and its place in the deque.
EVENT_OVERHEAD_BYTES = 120


def _cost(event: SseEvent) -> int:
    return len(event.data) + EVENT_OVERHEAD_BYTES


class EventLog:
    def __init__(self, resume_ms: float) -> None:
        self._events: deque[SseEvent] = deque()
        self._resume_ms = resume_ms
        self._kept_ms = 0.0
        """Audio of the delivered events still kept for resumes."""
        self._ahead_ms = 0.0
        """Audio of the events not yet delivered."""
        self.delivered = 0
        """The highest event id handed to a reader."""
        self._last_id = 0
        self._dropped_to = 0
        """Events up to this id are no longer kept."""
        self.kept_bytes = 0
        """What the kept events weigh (their data, and what keeping each costs)."""
        self.readers = 0
        self.finished = False
        """No event will be added."""
        self._changed = asyncio.Event()
        """Set (and replaced) at every change: wakes everyone waiting then."""

    @property
    def last_id(self) -> int:
        return self._last_id

    @property
    def resume_floor(self) -> int:
        """Where a reader that asked for dropped events goes on from: nothing kept is skipped."""
        return max(self.delivered, self._dropped_to)

    def after(self, event_id: int) -> list[SseEvent] | None:
        """Events after `event_id`, or None when some of them were already dropped."""
        if event_id < self._dropped_to:
            return None
        return [e for e in self._events if e.id > event_id]

    async def wait_room(self, ahead_ms: float) -> None:
        """Until readers took all but `ahead_ms` of the audio handed to the log (backpressure)."""
        while self._ahead_ms >= ahead_ms:
            await self._changed.wait()

    def append(self, event: SseEvent) -> None:
        self._events.append(event)
        self._last_id = event.id
        self.kept_bytes += _cost(event)
        self._ahead_ms += event.audio_ms
        self._notify()

    def forget(self) -> None:
        """Drop every event (a finished session over the server's budget): resumes are refused."""
        self._dropped_to = self._last_id
        self._events.clear()
        self.kept_bytes = 0
        self._kept_ms = self._ahead_ms = 0.0
        self._notify()

    def finish(self) -> None:
        self.finished = True
        self._notify()

    def mark_delivered(self, event_id: int) -> None:
        if event_id <= self.delivered:
            return
        for event in self._events:
            if self.delivered < event.id <= event_id:
                self._kept_ms += event.audio_ms
                self._ahead_ms -= event.audio_ms
        self.delivered = event_id
        if self.delivered >= self.last_id:
            self._ahead_ms = 0.0  # sums of floats drift; nothing is ahead now
        while self._events and self._events[0].id <= self.delivered and (
            self._kept_ms - self._events[0].audio_ms >= self._resume_ms or len(self._events) > MAX_LOG_EVENTS
        ):
            dropped = self._events.popleft()
            self._kept_ms -= dropped.audio_ms
            self.kept_bytes -= _cost(dropped)
            self._dropped_to = dropped.id
        self._notify()

    async def wait_beyond(self, cursor: int, timeout_s: float) -> bool:
        """Until there is an event after `cursor` (or the end); False after `timeout_s` of nothing."""
        try:
            async with asyncio.timeout(timeout_s):
                while not (self.finished or self.last_id > cursor):
                    await self._changed.wait()
        except TimeoutError:
            return False
        return True

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()


async def follow(
    log: EventLog, last_event_id: int | None, keepalive_s: float, write: Callable[[bytes], Awaitable[None]],
    delivered: Callable[[], None],
) -> None:  # fmt: skip
    """Write the log's events from `last_event_id` on (default: what no reader took yet) until
    it is finished, with keep-alive comments while nothing happens."""
    cursor = log.delivered if last_event_id is None else last_event_id
    while True:
        events = log.after(cursor)
        if events is None:
            gone = {"type": "error", "code": ErrorCode.RESUME_UNAVAILABLE, "message": f"events after {cursor} are no longer kept"}
            await write(b"event: error\ndata: %s\n\n" % msgspec.json.encode(gone))
            cursor = log.resume_floor
            continue
        if not events:
            if log.finished and cursor >= log.last_id:
                return
            if not await log.wait_beyond(cursor, keepalive_s):
                await write(KEEPALIVE)  # proxies and load balancers keep idle streams open
            continue
        for event in events:
            await write(event.encode())
            cursor = event.id
            delivered()
            log.mark_delivered(cursor)
