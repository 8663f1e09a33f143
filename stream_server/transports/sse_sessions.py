"""Incremental HTTP sessions with Server-Sent Events, for clients that cannot hold a WebSocket.

    POST   /v1/tts/sessions              config fields → 201 {"id", "text_url", "events_url"}
    POST   /v1/tts/sessions/{id}/text    {"text", "flush"?, "end"?, "seq"?}
    GET    /v1/tts/sessions/{id}/events  text/event-stream (resumable with Last-Event-ID)
    DELETE /v1/tts/sessions/{id}         barge-in, as the WebSocket's `cancel` (`?played_ms=`: its playback position)

A session's stream renders its outputs into a log of numbered events (event_log.py); readers
follow the log with a cursor. The stream runs only a little ahead of what readers took: without a
reader, its ring fills and synthesis waits, as on the WebSocket. Sessions outlive requests, so
their streams run in the task group of `SseSessions`, which the app's lifespan owns.

A finished session keeps only its log, for resumes, until `--sse-idle-s`: its stream (ring, audio
pipeline, encoder) is released when it ends. The logs of finished sessions share one budget
(`--sse-finished-mb`): past it the oldest finished sessions forget their events first. On a server
without keys, creating sessions is rate-limited (`--open-sessions-per-minute`) as a key's streams are.
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
from ..protocol import Config, ErrorCode, ProtocolError
from ..protocol.sse import SseEncoder
from ..request_id import request_id_of
from ..security import Client
from ..security.guard import client_of
from ..security.limits import TokenBucket
from ..server_state import ServerState
from ..session import Outcome, Output, Stopped, Stream
from .event_log import EventLog, follow
from .http_common import HttpError, http_error, options_for, read_body
from .http_stream import StreamedResponse, Write, open_stream
from .sse_cluster import ClusterSessions, TextCommand

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
    def __init__(
        self, session_id: str, stream: Stream, client: Client, resume_ms: float, clock: Callable[[], float]
    ) -> None:
        self.id = session_id
        self.stream: Stream | None = stream
        """None once the stream has ended and its buffers are released."""
        self.stream_id = stream.id
        self.client = client
        self.log = EventLog(resume_ms)
        self.scope = anyio.CancelScope()
        """The scope its stream runs in: cancelled when the session is closed."""
        self._clock = clock
        self._encoder = SseEncoder()
        self._next_text_seq = 0
        self._appending = anyio.Lock()
        """Text requests apply one at a time: charging one may wait (the key's limits in Redis)."""
        self.last_active = clock()

    @property
    def pending_chars(self) -> int:
        return 0 if self.stream is None else self.stream.pending_chars

    async def append_text(self, request: TextRequest) -> None:
        async with self._appending:
            await self._append_text(request)

    async def _append_text(self, request: TextRequest) -> None:
        self.last_active = self._clock()
        stream = self._live_stream()
        if request.seq is not None:
            if request.seq < self._next_text_seq:
                return  # a retried request that was applied already: applying it twice would repeat text
            if request.seq > self._next_text_seq:
                raise HttpError(
                    409, "out_of_order", f"text request {request.seq} came before {self._next_text_seq}; resend that"
                )
        try:
            if request.text:
                await stream.text(request.text)
            if request.flush:
                stream.flush()
            if request.end:
                stream.end()
        except ProtocolError as exc:
            raise http_error(exc) from None  # refused: its number stays free for the corrected retry
        if request.seq is not None:
            self._next_text_seq += 1

    def cancel(self, played_ms: float | None = None) -> None:
        self.last_active = self._clock()
        if self.stream is not None:  # a finished stream has nothing left to cancel
            self.stream.cancel(played_ms)

    def _live_stream(self) -> Stream:
        if self.stream is None:
            raise HttpError(409, ErrorCode.STREAM_ENDED, "this session's stream has ended; create a new session")
        return self.stream

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
        self._finished: dict[str, SseSession] = {}
        """The finished sessions still kept, oldest first (dicts keep insertion order)."""
        settings = state.settings
        self._finished_budget = settings.sse_finished_mb * 1_000_000
        self._open_creations = TokenBucket.full(settings.open_sessions_per_minute, clock())
        self._tasks: anyio.abc.TaskGroup | None = None
        self.cluster: ClusterSessions | None = None
        """With `--redis-url`: the sessions live in Redis, shared by every server (sse_cluster.py)."""

    def __len__(self) -> int:
        return len(self._sessions)

    async def __aenter__(self) -> Self:
        self._tasks = anyio.create_task_group()
        await self._tasks.__aenter__()
        self._tasks.start_soon(self._expire_forever, name="sse-expiry")
        if self._state.redis is not None:
            self.cluster = ClusterSessions(self._state, self._tasks, self._take_open_creation)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for session_id in list(self._sessions):
            self.close(session_id)
        assert self._tasks is not None
        self._tasks.cancel_scope.cancel()
        await self._tasks.__aexit__(None, None, None)

    async def create(self, config: Config, client: Client, request_id: str | None = None) -> SseSession:
        assert self._tasks is not None, "SseSessions is used outside its context"
        options = options_for(self._state, config)
        self._take_open_creation(client)
        stream = await open_stream(self._state, options, "sse_session", client)
        session = SseSession(uuid.uuid4().hex, stream, client, self._state.settings.sse_resume_ms, self._clock)
        self._sessions[session.id] = session
        self._tasks.start_soon(self._run, session, stream, name=f"sse-{stream.id}")
        log_event(
            logger, "sse.open", session=session.id[:8], stream=stream.id, request=request_id, provider=options.provider
        )
        return session

    def _take_open_creation(self, client: Client) -> None:
        """A key's sessions count against its streams per minute (admission); without keys, every
        session comes from the one anonymous client, limited here."""
        per_minute = self._state.settings.open_sessions_per_minute
        if client.key is not None or not per_minute:
            return
        if wait_s := self._open_creations.take(1, self._clock()):
            raise HttpError(
                429, ErrorCode.RATE_LIMITED,
                f"this server takes {per_minute} new sessions a minute without keys; retry in {wait_s:.1f} s",
                retry_after_s=wait_s,
            )  # fmt: skip

    async def _run(self, session: SseSession, stream: Stream) -> None:
        outcome = Outcome.GONE
        with session.scope:
            try:
                outcome = await stream.run(session.render)
            except Exception as exc:
                # One session's bug must not end the task group that runs every other session.
                # Details (which may quote the text) only at DEBUG.
                log_event(logger, "sse.failed", level=logging.ERROR, stream=stream.id, error=type(exc).__name__)
                logger.debug("sse.failed", exc_info=True, extra={"fields": {"stream": stream.id}})
                outcome = Outcome.ABANDONED
        # The stream is over: its slot (--max-streams, the key's streams) and its buffers are
        # free now; the event log stays for readers and resumes until the session expires.
        self._state.close_stream(stream)
        session.stream = None
        session.log.finish()
        if outcome in (Outcome.STOPPED, Outcome.ABANDONED):
            self.close(session.id)  # the server ended it: readers attached read its error and end
        elif session.id in self._sessions:
            self._finished[session.id] = session
            self.keep_finished_within_budget()

    def keep_finished_within_budget(self) -> int:
        """Forget the events of the oldest finished sessions while all of them weigh more than
        `--sse-finished-mb` (a session being read keeps its events); returns how many forgot."""
        total = sum(s.log.kept_bytes for s in self._finished.values())
        forgot = 0
        for session in list(self._finished.values()):
            if total <= self._finished_budget:
                break
            if session.log.readers or not session.log.kept_bytes:
                continue
            total -= session.log.kept_bytes
            session.log.forget()
            forgot += 1
        if forgot:
            log_event(logger, "sse.finished_forgotten", sessions=forgot, kept_bytes=total)
        return forgot

    def get(self, session_id: str, client: Client | None = None) -> SseSession:
        """The session; with `client`, only if it is the one that made it (else: not found)."""
        session = self._sessions.get(session_id)
        if session is None or (client is not None and session.client != client):
            raise HttpError(404, "unknown_session", "no such session (it may have expired)")
        return session

    def close(self, session_id: str) -> None:
        session = self._sessions.pop(session_id, None)
        self._finished.pop(session_id, None)
        if session is not None:
            session.scope.cancel()
            if session.stream is not None:
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
        self.keep_finished_within_budget()  # readers that detached may have left events over it
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
        sessions = _sessions(request)
        if sessions.cluster is not None:
            session_id = await sessions.cluster.create(config, client_of(request), request_id_of(request))
        else:
            session_id = (await sessions.create(config, client_of(request), request_id_of(request))).id
    except HttpError as exc:
        return exc.response()
    base = f"/v1/tts/sessions/{session_id}"
    return JSONResponse(
        {"id": session_id, "text_url": f"{base}/text", "events_url": f"{base}/events"}, status_code=201
    )


async def session_text(request: Request) -> Response:
    state: ServerState = request.app.state.server
    cluster = _sessions(request).cluster
    try:
        if cluster is not None:
            body = await read_body(request, TextRequest, state.settings.max_message_bytes)
            command = TextCommand(text=body.text, flush=body.flush, end=body.end)
            pending = await cluster.append(request.path_params["session_id"], client_of(request), command, body.seq)
            return JSONResponse({"accepted": True, "pending_chars": pending})
        session = _sessions(request).get(request.path_params["session_id"], client_of(request))
        body = await read_body(request, TextRequest, state.settings.max_message_bytes)
        await session.append_text(body)
    except HttpError as exc:
        return exc.response()
    return JSONResponse({"accepted": True, "pending_chars": session.pending_chars})


async def session_events(request: Request) -> Response | StreamedResponse:
    state: ServerState = request.app.state.server
    sessions = _sessions(request)
    header = request.headers.get("last-event-id")
    # isascii: str.isdigit also takes digits like '²' that int() refuses.
    last_id = int(header) if header and header.isascii() and header.isdigit() else None
    session_id: str = request.path_params["session_id"]
    if (cluster := sessions.cluster) is not None:
        try:
            if not await cluster.exists(session_id):
                raise HttpError(404, "unknown_session", "no such session (it may have expired)")
        except HttpError as exc:
            return exc.response()

        async def follow(write: Write) -> None:
            await cluster.follow(session_id, last_id, state.settings.sse_keepalive_s, write)

        return StreamedResponse("text/event-stream", follow, headers={"X-Accel-Buffering": "no"})
    try:
        session = sessions.get(session_id)
    except HttpError as exc:
        return exc.response()

    async def produce(write: Write) -> None:
        try:
            await session.events(last_id, state.settings.sse_keepalive_s, write)
        finally:
            sessions.keep_finished_within_budget()  # a reader that left may leave events over it

    return StreamedResponse("text/event-stream", produce, headers={"X-Accel-Buffering": "no"})


async def delete_session(request: Request) -> Response:
    if (cluster := _sessions(request).cluster) is not None:
        try:
            played_ms = _played_ms(request.query_params.get("played_ms"))
            await cluster.cancel(request.path_params["session_id"], client_of(request), played_ms)
        except HttpError as exc:
            return exc.response()
        return JSONResponse({"cancelled": True})
    try:
        session = _sessions(request).get(request.path_params["session_id"], client_of(request))
        played_ms = _played_ms(request.query_params.get("played_ms"))
    except HttpError as exc:
        return exc.response()
    session.cancel(played_ms)
    return JSONResponse({"cancelled": True})


def _played_ms(value: str | None) -> float | None:
    """DELETE's `?played_ms=`: the client's playback position, as on the WebSocket's `cancel`."""
    if value is None:
        return None
    try:
        played = float(value)
    except ValueError:
        played = -1.0
    if not played >= 0 or played == float("inf"):
        raise HttpError(400, ErrorCode.BAD_MESSAGE, f"played_ms must be a number of ms >= 0, not {value!r}")
    return played

