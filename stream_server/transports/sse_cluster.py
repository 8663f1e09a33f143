"""SSE sessions shared by the servers of a cluster through Redis (`--redis-url`).

Any node takes a session's text, `DELETE` or events `GET`: text and cancels go into the session's
text stream in Redis, which the node running the stream (its owner, `sse_owner.py`) consumes;
readers follow the session's events stream, so `Last-Event-ID` resumes on any node. The node
that created a session owns it; when its lease lapses (the node died), the next node to serve the
session takes it over: a reader notices within a second of its blocking read, a text request at
once. Takeover by the next request, rather than by a watcher scanning every session, needs no
list of all sessions in Redis; a session nobody reads or writes does not need a stream.

While Redis does not answer, new sessions get `503 cluster_unavailable`, requests for existing
ones the same, and readers an `error` event with that code, after which their stream ends.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

import anyio
import msgspec

from ..cluster import RedisUnavailable, hashed
from ..cluster.sse_store import SessionFacts, SessionStore
from ..cluster.sse_wire import TextCommand, cluster_error, resume_error, session_keys
from ..logs import log_event
from ..protocol import Config, ErrorCode, ProtocolError
from ..protocol.sse import KEEPALIVE
from ..security import Client
from ..server_state import ServerState
from .http_common import HttpError, http_error, options_for
from .http_stream import Write, open_stream
from .sse_owner import SessionOwner

logger = logging.getLogger(__name__)

READ_BLOCK_MS = 1000
"""A reader's blocking read: it looks whether the session still has an owner this often."""
ANONYMOUS = "-"


def unavailable() -> HttpError:
    return HttpError(
        503, ErrorCode.CLUSTER_UNAVAILABLE, "Redis, which holds this cluster's sessions, does not answer; retry later",
        retry_after_s=1.0,
    )  # fmt: skip


def unknown() -> HttpError:
    return HttpError(404, "unknown_session", "no such session (it may have expired)")


def client_name(client: Client) -> str:
    return ANONYMOUS if client.key is None else hashed(client.key)


class ClusterSessions:
    """The cluster's sessions as this node serves them; `owned`: those whose stream runs here."""

    def __init__(self, state: ServerState, tasks: anyio.abc.TaskGroup, take_creation: Callable[[Client], None]) -> None:
        assert state.redis is not None
        self._state = state
        self._tasks = tasks
        self._take_creation = take_creation
        self._store = SessionStore(state.redis, state.settings.sse_idle_s)
        self.node = uuid.uuid4().hex
        self.owned: dict[str, SessionOwner] = {}
        """Bounded by the streams this server may run (--max-streams)."""

    async def create(self, config: Config, client: Client, request_id: str | None) -> str:
        options = options_for(self._state, config)
        if self._state.redis is not None and not self._state.redis.available:
            raise unavailable()  # before a stream slot is taken
        self._take_creation(client)
        stream = await open_stream(self._state, options, "sse_session", client, charged_before=True)
        session_id = uuid.uuid4().hex
        keys = session_keys(session_id)
        try:
            await self._store.create(keys, client_name(client), msgspec.json.encode(config), self.node)
        except RedisUnavailable:
            self._state.close_stream(stream)
            raise unavailable() from None
        self._start(session_id, SessionOwner(self._state, self._store, keys, stream, self.node))
        log_event(
            logger, "sse.open", session=session_id[:8], stream=stream.id, request=request_id,
            provider=options.provider, cluster=True,
        )  # fmt: skip
        return session_id

    async def append(self, session_id: str, client: Client, command: TextCommand, seq: int | None) -> int:
        """Puts the command in the session's text stream; returns the characters not yet
        synthesized. Raises `HttpError` as a local session does."""
        keys = session_keys(session_id)
        # Charged here, where the text is accepted, so that the key's characters per minute
        # (shared by every server) refuse it with a 429 as a local session does; the owner's
        # stream does not charge it again. (A request refused below is charged all the same.)
        try:
            owner = await self._store.client_of(keys)
        except RedisUnavailable:
            raise unavailable() from None
        if owner == client_name(client):  # else `append` answers 404, charging nothing
            try:
                await self._state.access.limits.take_chars(client, len(command.text))
            except ProtocolError as exc:
                raise http_error(exc) from None
        try:
            accepted = await self._store.append(
                keys, client_name(client), command, seq, self._state.settings.max_pending_chars
            )
        except RedisUnavailable:
            raise unavailable() from None
        match accepted.outcome:
            case "unknown":
                raise unknown()
            case "out_of_order":
                raise HttpError(409, "out_of_order", f"text request {seq} came before {accepted.number}; resend that")
            case "ended":
                raise HttpError(409, ErrorCode.STREAM_ENDED, "this session's input has ended; create a new session")
            case "pending":
                raise HttpError(
                    413, ErrorCode.PENDING_TEXT_LIMIT,
                    f"the session already holds {accepted.number} characters not yet synthesized "
                    f"(limit {self._state.settings.max_pending_chars}); this text was dropped",
                )  # fmt: skip
        try:
            await self._adopt_if_orphaned(session_id)
        except RedisUnavailable:
            pass  # the text is accepted (in Redis): a reader, or the next request, takes the session over
        return accepted.number

    async def exists(self, session_id: str) -> bool:
        try:
            return await self._store.client_of(session_keys(session_id)) is not None
        except RedisUnavailable:
            raise unavailable() from None

    async def follow(self, session_id: str, last_event_id: int | None, keepalive_s: float, write: Write) -> None:
        """Writes the session's events from `last_event_id` on (default: after what readers took)
        until its end, with keep-alives; takes the session over if its owner is gone."""
        keys = session_keys(session_id)
        clock = anyio.current_time
        try:
            state = await self._store.touch(keys, None)
            if state is None:
                return
            cursor = state[0] if last_event_id is None else last_event_id
            quiet_since = clock()
            while True:
                events = await self._store.read_events(keys, cursor, min(READ_BLOCK_MS, int(keepalive_s * 1000)))
                if events and events[0] is not None and events[0].id > cursor + 1:
                    await write(resume_error(cursor))  # trimmed: its events are no longer kept
                    state = await self._store.touch(keys, None)
                    cursor = max(cursor, state[0] if state else 0, events[0].id - 1)
                    continue
                for event in events:
                    if event is None:
                        return  # the end marker: the stream is over
                    await write(event.encode())
                    cursor = event.id
                state = await self._store.touch(keys, cursor if events else None)
                if state is None:
                    return  # expired
                if events:
                    quiet_since = clock()
                    continue
                if not state[2] and not state[1]:
                    await self._adopt(session_id)
                if clock() - quiet_since >= keepalive_s:
                    await write(KEEPALIVE)  # proxies and load balancers keep idle streams open
                    quiet_since = clock()
        except RedisUnavailable:
            await write(cluster_error("Redis, which holds this session, does not answer; reconnect later"))

    async def cancel(self, session_id: str, client: Client, played_ms: float | None = None) -> None:
        await self.append(session_id, client, TextCommand(cancel=True, played_ms=played_ms), None)

    # -- ownership ---------------------------------------------------------------------------------

    async def _adopt_if_orphaned(self, session_id: str) -> None:
        if session_id not in self.owned:
            await self._adopt(session_id)

    async def _adopt(self, session_id: str) -> None:
        """Take the session's lease if nobody holds it, and run its stream here from where the
        spoken text ends."""
        keys = session_keys(session_id)
        if session_id in self.owned or not await self._store.take_lease(keys, self.node):
            return
        facts = await self._store.facts(keys)
        client = self._client_of(facts) if facts else None
        if facts is None or client is None:
            await self._store.release(keys, self.node)
            return
        try:
            options = options_for(self._state, msgspec.json.decode(facts.config, type=Config))
            stream = await open_stream(self._state, options, "sse_session", client, charged_before=True)
        except HttpError as exc:
            # This node cannot run it now (its limits): another may; the lease is given back.
            log_event(logger, "sse.takeover_refused", level=logging.WARNING, session=session_id[:8], code=exc.code)
            await self._store.release(keys, self.node)
            return
        self._start(session_id, SessionOwner(self._state, self._store, keys, stream, self.node, facts))
        log_event(
            logger, "sse.taken_over", level=logging.WARNING, session=session_id[:8], stream=stream.id,
            spoken=facts.spoken, replay_from=facts.checkpoint.segments,
        )  # fmt: skip

    def _client_of(self, facts: SessionFacts) -> Client | None:
        if facts.client == ANONYMOUS:
            return Client(None)
        return next((c for c in self._state.access.keys.clients() if client_name(c) == facts.client), None)

    def _start(self, session_id: str, owner: SessionOwner) -> None:
        self.owned[session_id] = owner
        self._tasks.start_soon(self._run, session_id, owner, name=f"sse-{owner.stream.id}")

    async def _run(self, session_id: str, owner: SessionOwner) -> None:
        try:
            await owner.run()
        except Exception as exc:
            # One session's bug must not end the task group that runs every other session.
            log_event(logger, "sse.failed", level=logging.ERROR, stream=owner.stream.id, error=type(exc).__name__)
            logger.debug("sse.failed", exc_info=True, extra={"fields": {"stream": owner.stream.id}})
        finally:
            self._state.close_stream(owner.stream)
            self.owned.pop(session_id, None)
