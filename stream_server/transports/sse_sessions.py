"""Incremental HTTP sessions with Server-Sent Events, for clients that cannot hold a WebSocket.

    POST   /v1/tts/sessions              config fields → 201 {"id", "text_url", "events_url"}
    POST   /v1/tts/sessions/{id}/text    {"text", "flush"?, "end"?, "seq"?}
    GET    /v1/tts/sessions/{id}/events  text/event-stream (resumable with Last-Event-ID)
    DELETE /v1/tts/sessions/{id}         barge-in, as the WebSocket's `cancel`

A pump moves the stream's output into a log of numbered events; readers follow the log with a
cursor. Events already handed to a reader stay in the log for `--sse-resume-ms` of audio, so a
client that reconnects with `Last-Event-ID` gets exactly what it missed. The pump runs only a
little ahead of what readers took: without a reader, the stream's ring fills and synthesis waits,
as on the WebSocket.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

import msgspec
from msgspec import Meta
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from ..buffer import Outbox, Pacer
from ..logs import log_event
from ..protocol import Cancelled, Config, Error, ErrorCode, ProtocolError, Ready
from ..protocol.sse import KEEPALIVE, SseEncoder, SseEvent
from ..security import Client
from ..security.guard import client_of
from ..server_state import ServerState
from ..session import STREAM_DONE, OutItem, StreamSession, ready_message
from .http_common import HttpError, close_stream, http_error, open_stream, options_for, read_body

logger = logging.getLogger(__name__)

# Audio the pump may take from the stream ahead of its readers; the rest waits in the ring.
PUMP_AHEAD_MS = 200.0
# Events kept for resuming, whatever their audio: bounds the log's control events too.
MAX_LOG_EVENTS = 4096


class TextRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    text: str = ""
    flush: bool = False
    end: bool = False
    seq: Annotated[int, Meta(ge=0)] | None = None
    """Optional request number (0, 1, 2...): requests are applied in this order, each once."""


class EventLog:
    """Numbered events; the delivered part is kept for resuming, bounded in ms of audio."""

    def __init__(self, resume_ms: float) -> None:
        self._events: deque[SseEvent] = deque()
        self._resume_ms = resume_ms
        self._kept_ms = 0.0
        self.delivered = 0  # highest event id handed to a reader
        self.changed = asyncio.Condition()

    @property
    def last_id(self) -> int:
        return self._events[-1].id if self._events else self.delivered

    def ahead_ms(self) -> float:
        return sum(e.audio_ms for e in self._events if e.id > self.delivered)

    def after(self, event_id: int) -> list[SseEvent] | None:
        """Events after `event_id`, or None when some of them were already dropped."""
        if self._events and event_id < self._events[0].id - 1:
            return None
        return [e for e in self._events if e.id > event_id]

    def append(self, event: SseEvent) -> None:
        self._events.append(event)

    def mark_delivered(self, event_id: int) -> None:
        if event_id <= self.delivered:
            return
        for event in self._events:
            if self.delivered < event.id <= event_id:
                self._kept_ms += event.audio_ms
        self.delivered = event_id
        while self._events and self._events[0].id <= self.delivered and (
            self._kept_ms - self._events[0].audio_ms >= self._resume_ms or len(self._events) > MAX_LOG_EVENTS
        ):
            self._kept_ms -= self._events.popleft().audio_ms


class SseSession:
    def __init__(
        self,
        session_id: str,
        stream: StreamSession,
        outbox: Outbox[OutItem],
        ready: Ready,
        resume_ms: float,
        finished: Callable[[], Awaitable[None]],
    ) -> None:
        self.id = session_id
        self._finished = finished
        self.stream = stream
        self.outbox = outbox
        self.log = EventLog(resume_ms)
        self._encoder = SseEncoder()
        self.log.append(self._encoder.event(ready))
        self.last_active = time.monotonic()
        self.readers = 0
        self.done = False
        self._pacer = Pacer(stream.options.max_lead_ms)
        self._next_text_seq = 0
        self._pump = asyncio.create_task(self._run_pump(), name=f"sse-pump-{stream.stream_id}")

    def append_text(self, request: TextRequest) -> None:
        self.last_active = time.monotonic()
        if request.seq is not None:
            if request.seq < self._next_text_seq:
                return  # a retried request that was applied already: applying it twice would repeat text
            if request.seq > self._next_text_seq:
                raise HttpError(
                    409, "out_of_order", f"text request {request.seq} came before {self._next_text_seq}; resend that"
                )
        try:
            if request.text:
                self.stream.push_text(request.text)
            if request.flush:
                self.stream.flush()
            if request.end:
                self.stream.end()
        except ProtocolError as exc:
            raise http_error(exc) from None  # refused: its number stays free for the corrected retry
        if request.seq is not None:
            self._next_text_seq += 1

    async def cancel(self) -> None:
        self.last_active = time.monotonic()
        await self.stream.cancel()
        self._pacer.reset()
        self.outbox.send_control(Cancelled())

    async def events(self, last_event_id: int | None, keepalive_s: float) -> AsyncIterator[bytes]:
        cursor = self.log.delivered if last_event_id is None else last_event_id
        self.readers += 1
        try:
            if self.log.after(cursor) is None:
                missing = ErrorCode.RESUME_UNAVAILABLE
                yield b"event: error\ndata: %s\n\n" % msgspec.json.encode(
                    {"type": "error", "code": missing, "message": f"events after {cursor} are no longer kept"}
                )
                cursor = self.log.delivered
            while True:
                events = self.log.after(cursor) or []
                if not events:
                    if self.done and cursor >= self.log.last_id:
                        return
                    if not await self._wait_for_events(cursor, keepalive_s):
                        yield KEEPALIVE  # proxies and load balancers keep idle streams open
                    continue
                for event in events:
                    if event.audio_ms:
                        if delay := self._pacer.delay():
                            await asyncio.sleep(delay)  # pacing to real time, as on the WebSocket
                        self._pacer.sent(event.audio_ms)
                    yield event.encode()
                    cursor = event.id
                    self.last_active = time.monotonic()
                    async with self.log.changed:
                        self.log.mark_delivered(cursor)
                        self.log.changed.notify_all()
        finally:
            self.readers -= 1
            self.last_active = time.monotonic()

    async def _wait_for_events(self, cursor: int, timeout_s: float) -> bool:
        """Until there is an event after `cursor` (or the end); False after `timeout_s` of nothing."""
        async with self.log.changed:
            try:
                # Checked under the lock: an event appended just before we wait is not missed.
                await asyncio.wait_for(
                    self.log.changed.wait_for(lambda: self.done or self.log.last_id > cursor), timeout_s
                )
            except TimeoutError:
                return False
        return True

    async def _run_pump(self) -> None:
        while True:
            async with self.log.changed:
                # Backpressure: wait until readers took what is ahead of them.
                await self.log.changed.wait_for(lambda: self.log.ahead_ms() < PUMP_AHEAD_MS)
            item = await self.outbox.get()
            async with self.log.changed:
                if item is STREAM_DONE:
                    self.log.append(self._encoder.event(self.stream.stats.done_message()))
                    self.done = True
                    self.log.changed.notify_all()
                    break
                self.log.append(self._encoder.event(item))  # type: ignore[arg-type]
                self.stream.note_sent(item)
                self.log.changed.notify_all()
        # The stream is over: its slot (--max-streams, the key's streams) is free now; the event
        # log stays for readers and resumes until the session expires.
        await self._finished()

    async def end_with(self, error: Error) -> None:
        """The server ends the stream early: readers get `error`, then the event stream ends."""
        await self.aclose()
        async with self.log.changed:
            self.log.append(self._encoder.event(error))
            self.done = True
            self.log.changed.notify_all()

    async def aclose(self) -> None:
        self._pump.cancel()
        await asyncio.gather(self._pump, return_exceptions=True)


class SseSessions:
    """The live sessions of this server process, behind the small interface the endpoints use
    (create, get, close); a shared store can take its place for several worker processes."""

    def __init__(self, state: ServerState, clock: Callable[[], float] = time.monotonic) -> None:
        self._state = state
        self._clock = clock
        self._sessions: dict[str, SseSession] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    async def create(self, config: Config, client: Client) -> SseSession:
        options = options_for(self._state, config)
        session_id = uuid.uuid4().hex

        async def stop(reason: ProtocolError) -> None:
            await session.end_with(Error(code=reason.code, message=reason.message))
            await self.close(session_id)

        async def finished() -> None:
            await close_stream(self._state, stream)

        stream, outbox = await open_stream(self._state, options, "sse_session", client, stop=stop)
        session = SseSession(
            session_id, stream, outbox, ready_message(options), self._state.settings.sse_resume_ms, finished
        )
        self._sessions[session_id] = session
        log_event(logger, "sse.open", session=session_id[:8], stream=stream.stream_id, provider=options.provider)
        return session

    def get(self, session_id: str, client: Client | None = None) -> SseSession:
        """The session; with `client`, only if it is the one that made it (else: not found)."""
        session = self._sessions.get(session_id)
        if session is None or (client is not None and self._state.client_of(session.stream) != client):
            raise HttpError(404, "unknown_session", "no such session (it may have expired)")
        return session

    async def close(self, session_id: str) -> None:
        session = self._sessions.pop(session_id, None)
        if session is not None:
            await session.aclose()
            await close_stream(self._state, session.stream)
            log_event(logger, "sse.closed", session=session_id[:8])

    async def expire(self) -> int:
        """Close sessions that nobody read or wrote for `--sse-idle-s`; returns how many."""
        idle_s = self._state.settings.sse_idle_s
        now = self._clock()
        stale = [s.id for s in self._sessions.values() if not s.readers and now - s.last_active > idle_s]
        for session_id in stale:
            await self.close(session_id)
        return len(stale)

    async def aclose(self) -> None:
        for session_id in list(self._sessions):
            await self.close(session_id)


# -- endpoints -------------------------------------------------------------------------------


def _sessions(request: Request) -> SseSessions:
    return request.app.state.sse_sessions


async def create_session(request: Request) -> Response:
    state: ServerState = request.app.state.server
    try:
        config = await read_body(request, Config, state.settings.max_message_bytes)
        session = await _sessions(request).create(config, client_of(request))
    except HttpError as exc:
        return exc.response()
    base = f"/v1/tts/sessions/{session.id}"
    return JSONResponse(
        {"id": session.id, "text_url": f"{base}/text", "events_url": f"{base}/events"}, status_code=201
    )


async def session_text(request: Request) -> Response:
    state: ServerState = request.app.state.server
    try:
        session = _sessions(request).get(request.path_params["session_id"], client_of(request))
        body = await read_body(request, TextRequest, state.settings.max_message_bytes)
        session.append_text(body)
    except HttpError as exc:
        return exc.response()
    return JSONResponse({"accepted": True, "pending_chars": session.stream.pending_chars})


async def session_events(request: Request) -> Response:
    state: ServerState = request.app.state.server
    try:
        session = _sessions(request).get(request.path_params["session_id"])
    except HttpError as exc:
        return exc.response()
    header = request.headers.get("last-event-id")
    # isascii: str.isdigit also takes digits like '²' that int() refuses.
    last_id = int(header) if header and header.isascii() and header.isdigit() else None
    return StreamingResponse(
        session.events(last_id, state.settings.sse_keepalive_s),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def delete_session(request: Request) -> Response:
    try:
        session = _sessions(request).get(request.path_params["session_id"], client_of(request))
    except HttpError as exc:
        return exc.response()
    await session.cancel()
    return JSONResponse({"cancelled": True})


async def expire_forever(sessions: SseSessions, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)  # a periodic sweep, not a race fix
        await sessions.expire()

