"""Incremental HTTP sessions with Server-Sent Events, for clients that cannot hold a WebSocket.

    POST   /v1/tts/sessions              config fields → 201 {"id", "text_url", "events_url"}
    POST   /v1/tts/sessions/{id}/text    {"text", "flush"?, "end"?, "seq"?}
    GET    /v1/tts/sessions/{id}/events  text/event-stream (resumable with Last-Event-ID)
    DELETE /v1/tts/sessions/{id}         barge-in, as the WebSocket's `cancel`

A session's stream renders its outputs into a log of numbered events (event_log.py); readers
follow the log with a cursor. The stream runs only a little ahead of what readers took: without a
reader, its ring fills and synthesis waits, as on the WebSocket. Sessions outlive requests, so
their streams run in the task group of `SseSessions`, which the app's lifespan owns.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Annotated, Self

import anyio
import msgspec
from msgspec import Meta
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..logs import log_event
from ..protocol import Config, ProtocolError
from ..protocol.sse import SseEncoder
from ..security import Client
from ..security.guard import client_of
from ..server_state import ServerState
from ..session import Outcome, Output, Stopped, Stream
from .event_log import EventLog, follow
from .http_common import HttpError, http_error, options_for, read_body
from .http_stream import StreamedResponse, Write, open_stream

logger = logging.getLogger(__name__)

# Audio the stream may hand the log ahead of its readers; the rest waits in the stream's ring.
PUMP_AHEAD_MS = 200.0


class TextRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    text: str = ""
    flush: bool = False
    end: bool = False
    seq: Annotated[int, Meta(ge=0)] | None = None
    """Optional request number (0, 1, 2...): requests are applied in this order, each once."""


class SseSession:
    def __init__(self, session_id: str, stream: Stream, resume_ms: float, clock: Callable[[], float]) -> None:
        self.id = session_id
        self.stream = stream
        self.log = EventLog(resume_ms)
        self.scope = anyio.CancelScope()
        """The scope its stream runs in: cancelled when the session is closed."""
        self._clock = clock
        self._encoder = SseEncoder()
        self._next_text_seq = 0
        self.last_active = clock()

    def append_text(self, request: TextRequest) -> None:
        self.last_active = self._clock()
        if request.seq is not None:
            if request.seq < self._next_text_seq:
                return  # a retried request that was applied already: applying it twice would repeat text
            if request.seq > self._next_text_seq:
                raise HttpError(
                    409, "out_of_order", f"text request {request.seq} came before {self._next_text_seq}; resend that"
                )
        try:
            if request.text:
                self.stream.text(request.text)
            if request.flush:
                self.stream.flush()
            if request.end:
                self.stream.end()
        except ProtocolError as exc:
            raise http_error(exc) from None  # refused: its number stays free for the corrected retry
        if request.seq is not None:
            self._next_text_seq += 1

    def cancel(self) -> None:
        self.last_active = self._clock()
        self.stream.cancel()

    async def render(self, output: Output) -> None:
        """The stream's renderer: each output becomes an event of the log, once readers caught up."""
        await self.log.wait_room(PUMP_AHEAD_MS)
        if type(output) is Stopped:
            self.log.finish()  # the `error` saying why is the last event
        else:
            self.log.append(self._encoder.event(output))

    async def events(self, last_event_id: int | None, keepalive_s: float, write: Write) -> None:
        self.log.readers += 1
        try:
            await follow(self.log, last_event_id, keepalive_s, write, self._touch)
        finally:
            self.log.readers -= 1
            self._touch()

    def _touch(self) -> None:
        self.last_active = self._clock()


class SseSessions:
    """The live sessions of this server process, behind the small interface the endpoints use
    (create, get, close); a shared store can take its place for several worker processes.

    Entered as an async context manager (the app's lifespan): it owns the task group that runs
    the sessions' streams and the sweep that expires idle sessions."""

    def __init__(self, state: ServerState, clock: Callable[[], float] = time.monotonic) -> None:
        self._state = state
        self._clock = clock
        self._sessions: dict[str, SseSession] = {}
        self._tasks: anyio.abc.TaskGroup | None = None

    def __len__(self) -> int:
        return len(self._sessions)

    async def __aenter__(self) -> Self:
        self._tasks = anyio.create_task_group()
        await self._tasks.__aenter__()
        self._tasks.start_soon(self._expire_forever, name="sse-expiry")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for session_id in list(self._sessions):
            self.close(session_id)
        assert self._tasks is not None
        self._tasks.cancel_scope.cancel()
        await self._tasks.__aexit__(None, None, None)

    def create(self, config: Config, client: Client) -> SseSession:
        assert self._tasks is not None, "SseSessions is used outside its context"
        options = options_for(self._state, config)
        stream = open_stream(self._state, options, "sse_session", client)
        session = SseSession(uuid.uuid4().hex, stream, self._state.settings.sse_resume_ms, self._clock)
        self._sessions[session.id] = session
        self._tasks.start_soon(self._run, session, name=f"sse-{stream.id}")
        log_event(logger, "sse.open", session=session.id[:8], stream=stream.id, provider=options.provider)
        return session

    async def _run(self, session: SseSession) -> None:
        outcome = Outcome.GONE
        with session.scope:
            try:
                outcome = await session.stream.run(session.render)
            except Exception as exc:
                # One session's bug must not end the task group that runs every other session.
                # Details (which may quote the text) only at DEBUG.
                log_event(logger, "sse.failed", level=logging.ERROR, stream=session.stream.id, error=type(exc).__name__)
                logger.debug("sse.failed", exc_info=True, extra={"fields": {"stream": session.stream.id}})
                outcome = Outcome.ABANDONED
        # The stream is over: its slot (--max-streams, the key's streams) is free now; the event
        # log stays for readers and resumes until the session expires.
        self._state.close_stream(session.stream)
        session.log.finish()
        if outcome in (Outcome.STOPPED, Outcome.ABANDONED):
            self.close(session.id)  # the server ended it: readers attached read its error and end

    def get(self, session_id: str, client: Client | None = None) -> SseSession:
        """The session; with `client`, only if it is the one that made it (else: not found)."""
        session = self._sessions.get(session_id)
        if session is None or (client is not None and self._state.client_of(session.stream) != client):
            raise HttpError(404, "unknown_session", "no such session (it may have expired)")
        return session

    def close(self, session_id: str) -> None:
        session = self._sessions.pop(session_id, None)
        if session is not None:
            session.scope.cancel()
            self._state.close_stream(session.stream)
            session.log.finish()
            log_event(logger, "sse.closed", session=session_id[:8])

    def expire(self) -> int:
        """Close sessions that nobody read or wrote for `--sse-idle-s`; returns how many."""
        idle_s = self._state.settings.sse_idle_s
        now = self._clock()
        stale = [s.id for s in self._sessions.values() if not s.log.readers and now - s.last_active > idle_s]
        for session_id in stale:
            self.close(session_id)
        return len(stale)

    async def _expire_forever(self) -> None:
        every_s = min(5.0, self._state.settings.sse_idle_s / 4)
        while True:
            await anyio.sleep(every_s)  # a periodic sweep, not a race fix
            self.expire()


# -- endpoints -------------------------------------------------------------------------------


def _sessions(request: Request) -> SseSessions:
    return request.app.state.sse_sessions


async def create_session(request: Request) -> Response:
    state: ServerState = request.app.state.server
    try:
        config = await read_body(request, Config, state.settings.max_message_bytes)
        session = _sessions(request).create(config, client_of(request))
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


async def session_events(request: Request) -> Response | StreamedResponse:
    state: ServerState = request.app.state.server
    try:
        session = _sessions(request).get(request.path_params["session_id"])
    except HttpError as exc:
        return exc.response()
    header = request.headers.get("last-event-id")
    # isascii: str.isdigit also takes digits like '²' that int() refuses.
    last_id = int(header) if header and header.isascii() and header.isdigit() else None

    async def produce(write: Write) -> None:
        await session.events(last_id, state.settings.sse_keepalive_s, write)

    return StreamedResponse("text/event-stream", produce, headers={"X-Accel-Buffering": "no"})


async def delete_session(request: Request) -> Response:
    try:
        session = _sessions(request).get(request.path_params["session_id"], client_of(request))
    except HttpError as exc:
        return exc.response()
    session.cancel()
    return JSONResponse({"cancelled": True})

