"""The node that runs a cluster SSE session's stream (`--redis-url`): its owner.

It holds the session's lease in Redis (renewed every `RENEW_S`; a dead owner's lease lapses
within `LEASE_S`), applies the text commands any node accepted, in their order, and writes the
stream's events to the session's events stream, where any node's reader follows them. Like a
local session, it runs at most `PUMP_AHEAD_MS` of audio ahead of what readers took, and keeps
`--sse-resume-ms` of delivered audio for resumes.

After each segment it tells Redis how far the spoken text reaches (a `Checkpoint`), so a node
that takes the session over (`SessionOwner.replacing`) replays only the text not yet spoken:
from the checkpoint on, leaving out the segments already spoken and numbering events and
segments on from where the old owner stopped.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable

import anyio

from ..cluster import RedisUnavailable
from ..cluster.sse_store import LeaseLost
from ..cluster.sse_store import RENEW_S, SessionFacts, SessionStore
from ..cluster.sse_wire import Checkpoint, Checkpoints, Renumbering, SessionKeys, decode_command
from ..logs import log_event
from ..protocol import ErrorCode, ProtocolError
from ..protocol.messages import Error, SegmentEnd, Warning
from ..protocol.sse import SseEncoder
from ..server_state import ServerState
from ..session import Outcome, Output, Stopped, Stream
from .event_log import MAX_LOG_EVENTS

logger = logging.getLogger(__name__)

PUMP_AHEAD_MS = 200.0
"""As a local session (sse_sessions.py): audio handed to Redis ahead of its readers."""
POLL_S = 0.05
"""How often an owner waiting for readers looks at what they took (it is in another process)."""
RETRY_S = 0.5
"""How long an owner waits before trying Redis again after it did not answer."""
TEXT_BLOCK_MS = 1000


class SessionOwner:
    def __init__(
        self, state: ServerState, store: SessionStore, keys: SessionKeys, stream: Stream, node: str,
        facts: SessionFacts | None = None,
    ) -> None:  # fmt: skip
        """`facts`: the session's state in Redis when this node takes it over (None: new)."""
        self._state = state
        self._store = store
        self._keys = keys
        self.stream = stream
        self._node = node
        start = facts.checkpoint if facts else Checkpoint()
        self._base = start.segments
        self._checkpoints = Checkpoints(start)
        self._renumbering = Renumbering(start.segments, facts.spoken) if facts else None
        self._encoder = SseEncoder(first_id=(facts.last_event if facts else 0) + 1)
        self._spoken = facts.spoken if facts else 0
        self._delivered = facts.delivered if facts else 0
        self._undelivered: deque[tuple[int, float]] = deque()
        self._kept: deque[tuple[int, float]] = deque()
        """Delivered events still in Redis for resumes (id, audio ms), oldest first."""
        self._kept_ms = 0.0
        self._resume_ms = state.settings.sse_resume_ms
        self._accepted = 0
        """The session's characters accepted, up to the last command applied (from Redis)."""
        self._recent = start.tail
        """The end of the text given to the stream: the source of the next checkpoint's tail."""
        self._max_pending = state.settings.max_pending_chars
        self.lost = False
        """Another node holds the lease now, or the session expired: stop without a word."""
        self._handing_off = False
        """The server drains and stopped the stream: give the session to another server."""
        self._scope: anyio.CancelScope | None = None
        """`run`'s task group: cancelled when the session is lost."""

    async def run(self) -> Outcome:
        outcome = Outcome.GONE
        async with anyio.create_task_group() as tasks:
            self._scope = tasks.cancel_scope
            tasks.start_soon(self._keep_lease)
            tasks.start_soon(self._apply_commands, self._checkpoints.latest)
            outcome = await self.stream.run(self._render)
            tasks.cancel_scope.cancel()
        if self._handing_off:
            # This server drains (SIGTERM, a rolling update): the session is not over, another
            # server takes it from the last checkpoint as soon as the lease is free.
            log_event(logger, "sse.handed_off", stream=self.stream.id)
            await self._retrying(lambda: self._store.release(self._keys, self._node))
        elif not self.lost:
            await self._retrying(lambda: self._store.finish(self._keys, self._encoder.next_id - 1, self._node))
        return outcome

    # -- the lease ---------------------------------------------------------------------------------

    async def _keep_lease(self) -> None:
        while True:
            await anyio.sleep(RENEW_S)  # renewal period, well inside the lease's TTL
            try:
                held = await self._store.keep_lease(self._keys, self._node)
            except RedisUnavailable:
                continue  # the link logs the outage; the stream goes on until Redis answers again
            if not held:
                self._lose()
                return

    def _lose(self) -> None:
        """Another node holds the lease now, or the session expired: stop without a word."""
        if self.lost:
            return
        self.lost = True
        log_event(logger, "sse.lease_lost", level=logging.WARNING, stream=self.stream.id)
        self.stream.cancel()
        self.stream.close()
        if self._scope is not None:
            self._scope.cancel()

    # -- text in -----------------------------------------------------------------------------------

    async def _apply_commands(self, start: Checkpoint) -> None:
        """The checkpoint's uncut tail, then every command after it, in order, each once."""
        after = start.after
        if start.tail:
            self._recent = ""
            await self._apply_waiting(start.tail)
        while True:
            try:
                entries = await self._store.read_text(self._keys, after, TEXT_BLOCK_MS)
            except RedisUnavailable:
                await anyio.sleep(RETRY_S)  # until Redis answers again
                continue
            for entry_id, data, accepted in entries:
                command = decode_command(data)
                if command.cancel:
                    self.stream.cancel(command.played_ms)
                    self._recent = ""
                if command.text:
                    await self._apply_waiting(command.text)
                if command.flush:
                    self.stream.flush()
                if command.end:
                    self.stream.end()
                after = entry_id
                self._accepted = accepted
                self._checkpoints.applied(self._checkpoint(entry_id))

    def _checkpoint(self, after: str) -> Checkpoint:
        core = self.stream.core
        uncut = core.uncut_chars
        return Checkpoint(after, self._base + core.planned_segments, self._recent[-uncut:] if uncut else "")

    async def _apply_waiting(self, text: str) -> None:
        """Text any node accepted is applied, whatever the wait: the cluster's own cap on text
        not yet synthesized (sse_store) keeps the wait short."""
        while True:
            try:
                await self._apply_text(text)
                return
            except ProtocolError as exc:
                if exc.code is ErrorCode.PENDING_TEXT_LIMIT and self.stream.core.open:
                    await anyio.sleep(POLL_S)  # until synthesis made room
                    continue
                # The stream refused it (it ended meanwhile): the client hears why.
                self.stream.reply(Warning(code=exc.code, message=f"text dropped: {exc}"))
                return

    async def _apply_text(self, text: str) -> None:
        await self.stream.text(text)
        self._recent = (self._recent + text)[-self._max_pending :]

    # -- events out --------------------------------------------------------------------------------

    async def _render(self, output: Output) -> None:
        if type(output) is Stopped:
            return  # its `error` was the last event
        if type(output) is Error and output.code == ErrorCode.SHUTTING_DOWN and self._state.draining:
            self._handing_off = True  # not the session's end: readers hear `session_moved` instead
            return
        item = self._renumbering.output(output) if self._renumbering else output
        if item is None:
            return
        await self._wait_room()
        event = self._encoder.event(item)  # type: ignore[arg-type]
        await self._retrying(lambda: self._store.add_event(self._keys, event, self._node))
        self._undelivered.append((event.id, event.audio_ms))
        if isinstance(item, SegmentEnd):
            self._spoken = item.seq + 1
            moved = self._checkpoints.spoken(self._spoken)
            cut = max(0, self._accepted - self.stream.pending_chars)
            await self._retrying(lambda: self._store.progress(self._keys, self._node, self._spoken, cut, moved))

    async def _wait_room(self) -> None:
        while sum(ms for _, ms in self._undelivered) >= PUMP_AHEAD_MS:
            await anyio.sleep(POLL_S)  # readers are in other processes: look at what they took
            try:
                delivered = await self._store.delivered(self._keys)
            except RedisUnavailable:
                continue
            await self._took(delivered)

    async def _took(self, delivered: int) -> None:
        """Readers took the events up to `delivered`: those are kept while they hold at most
        `--sse-resume-ms` of audio (and `MAX_LOG_EVENTS`), then trimmed from Redis."""
        while self._undelivered and self._undelivered[0][0] <= delivered:
            event = self._undelivered.popleft()
            self._kept.append(event)
            self._kept_ms += event[1]
        trimmed = False
        while self._kept and (self._kept_ms - self._kept[0][1] >= self._resume_ms or len(self._kept) > MAX_LOG_EVENTS):
            self._kept_ms -= self._kept.popleft()[1]
            trimmed = True
        if trimmed:
            first_kept = self._kept[0][0] if self._kept else delivered + 1
            try:
                await self._store.trim_events(self._keys, first_kept)
            except RedisUnavailable:
                pass  # the events' MAXLEN bounds them until the next trim

    async def _retrying(self, write: Callable[[], Awaitable[None]]) -> None:
        """`write()` until Redis answers: what the stream made is not dropped during an outage.
        A write refused because another node owns the session now ends this owner."""
        while True:
            try:
                await write()
                return
            except RedisUnavailable:
                await anyio.sleep(RETRY_S)  # the link's watch logs the outage once
            except LeaseLost:
                self._lose()
                await anyio.sleep(0)  # cancelled here, unless finishing
                return

