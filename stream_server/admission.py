"""Which streams are open, for whom and over which transport, and whether one more may open.

One record per open stream, in one map: the server-wide cap (`--max-streams`), each client's own
limits, the metrics gauge and the shutdown drain all read it. Stopping a stream only queues its
goodbye (`Stream.stop` does no I/O), so a sweep over every stream never waits on one client.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass

from .metrics import Metrics
from .protocol import ErrorCode, ProtocolError
from .security import Client
from .security.limits import KeyLimits, StreamLease
from .session import Stream


@dataclass(frozen=True, slots=True)
class Admitted:
    transport: str
    client: Client
    opened_at: float
    lease: StreamLease


class Admission:
    def __init__(self, max_streams: int, limits: KeyLimits, metrics: Metrics) -> None:
        self._max_streams = max_streams
        self._limits = limits
        self._metrics = metrics
        self._open: dict[Stream, Admitted] = {}
        self._admitting = 0
        """Streams passed the server's cap, waiting for their client's limits (in Redis)."""
        self._all_closed = asyncio.Event()
        self._all_closed.set()
        self.draining = False
        """Shutting down: not ready, and new streams are refused."""

    def __len__(self) -> int:
        return len(self._open)

    def __iter__(self) -> Iterator[Stream]:
        return iter(list(self._open))

    async def admit(self, client: Client) -> StreamLease:
        """Raises `ProtocolError` unless one more stream may open for `client`: `shutting_down`
        while draining, `server_busy` at `--max-streams` (every stream holds buffers and tasks, so
        their number is what bounds the server's memory), or the client's own limits
        (`too_many_streams`, `rate_limited`). Passing counts the stream against the client's limits
        until the lease is released (`add` hands it to `release`)."""
        if self.draining:
            raise ProtocolError(ErrorCode.SHUTTING_DOWN, "the server is shutting down; connect to another one")
        if len(self._open) + self._admitting >= self._max_streams:
            raise ProtocolError(ErrorCode.SERVER_BUSY, f"{len(self._open)} streams are open; try again later")
        self._admitting += 1
        try:
            return await self._limits.open_stream(client)
        finally:
            self._admitting -= 1

    def add(self, stream: Stream, transport: str, client: Client, lease: StreamLease) -> None:
        """Record a stream admitted by `admit`, with its lease."""
        self._open[stream] = Admitted(transport, client, time.monotonic(), lease)
        self._all_closed.clear()
        self._metrics.active_streams.labels(transport).inc()

    def release(self, stream: Stream) -> None:
        """The stream is over: its slot and its client's are free (idempotent)."""
        record = self._open.pop(stream, None)
        if record is None:
            return
        record.lease.release()
        self._metrics.active_streams.labels(record.transport).dec()
        if not self._open:
            self._all_closed.set()

    def client_of(self, stream: Stream) -> Client | None:
        record = self._open.get(stream)
        return None if record is None else record.client

    async def drain(self, grace_s: float) -> int:
        """Shutdown: refuse new streams, give running ones `grace_s` to finish, then stop the
        rest (`shutting_down`); returns how many had to be stopped."""
        self.draining = True
        if await self.wait_all_closed(grace_s):
            return 0
        left = [stream for stream in self if stream.core.open]
        reason = ProtocolError(ErrorCode.SHUTTING_DOWN, "the server is shutting down")
        for stream in left:
            stream.stop(reason)
        return len(left)

    async def wait_all_closed(self, timeout_s: float) -> bool:
        try:
            await asyncio.wait_for(self._all_closed.wait(), timeout_s)
        except TimeoutError:
            return False
        return True
