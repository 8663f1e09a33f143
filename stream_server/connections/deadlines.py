"""A connection's deadlines, sans I/O: the request head must arrive in time, and what is written
must keep leaving. The caller samples the connection and asks; time is passed in."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum


class Expired(StrEnum):
    HEADER = "header_timeout"
    """A request's head (its line and headers, a WebSocket handshake's too) took too long."""
    WRITE = "write_timeout"
    """Bytes waited to be sent while the client took none of them, for too long."""
    BODY = "body_timeout"
    """A request's body stopped arriving before the server could answer it."""


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_connections: int
    """Accepted sockets served at once; past it requests are refused (server_busy)."""
    header_timeout_s: float
    write_timeout_s: float
    refusal_headroom: int = 16
    """Sockets past `max_connections` still read, so that health probes get through to a full
    server and other requests are refused in the API's own shape; past those, a new socket is
    answered with a bare 503 and closed unread."""

    @property
    def hard_cap(self) -> int:
        return self.max_connections + self.refusal_headroom

    @property
    def check_interval_s(self) -> float:
        """How often the deadlines are checked: a deadline is kept to within this much."""
        return min(1.0, max(0.05, min(self.header_timeout_s, self.write_timeout_s) / 5))


class ConnectionDeadlines:
    def __init__(self, limits: ConnectionLimits, now: float) -> None:
        self._limits = limits
        self._head_since: float | None = now  # a new connection owes its first request's head
        self._flushed = 0
        self._stalled_since: float | None = None
        self._body_quiet_since: float | None = None

    def head(self, awaiting: bool, now: float) -> None:
        """Whether the connection is waiting for (the rest of) a request head now. A head that
        completes stops its clock; the next one's starts when the connection waits again."""
        if not awaiting:
            self._head_since = None
        elif self._head_since is None:
            self._head_since = now

    def body(self, awaited: bool, now: float, *, arrived: bool = False) -> None:
        """Whether the server waits for (more of) a request body before it can answer. Its clock
        runs from the last byte of it that `arrived`: a body may come slowly, not stop."""
        if not awaited:
            self._body_quiet_since = None
        elif arrived or self._body_quiet_since is None:
            self._body_quiet_since = now

    def expired(
        self, now: float, *, awaiting_head: bool, written: int, buffered: int, awaiting_body: bool = False
    ) -> Expired | None:
        """Which deadline the connection has missed, if any. `written`: bytes handed to the
        transport so far; `buffered`: those of them it still holds, unsent. The write clock runs
        while something is buffered and restarts whenever some of it leaves. A body awaited
        before the answer may pause no longer than a head may take."""
        self.head(awaiting_head, now)
        self.body(awaiting_body, now)
        flushed = written - buffered
        if buffered == 0:
            self._stalled_since = None
        elif flushed > self._flushed or self._stalled_since is None:
            self._stalled_since = now
        self._flushed = flushed
        if self._head_since is not None and now - self._head_since >= self._limits.header_timeout_s:
            return Expired.HEADER
        if self._stalled_since is not None and now - self._stalled_since >= self._limits.write_timeout_s:
            return Expired.WRITE
        if self._body_quiet_since is not None and now - self._body_quiet_since >= self._limits.header_timeout_s:
            return Expired.BODY
        return None


class ThrottledCount:
    """How often something happened, for a log line at most every `interval_s`: a flood of
    refusals or timeouts is one line with a count, not a line each."""

    def __init__(self, interval_s: float) -> None:
        self._interval_s = interval_s
        self._pending = 0
        self._last = -math.inf

    def add(self, now: float) -> int | None:
        """Count one; returns the count to log now, or None while a line would come too soon."""
        self._pending += 1
        return self.due(now)

    def due(self, now: float) -> int | None:
        """The count not logged yet, once a line may be written again; None otherwise."""
        if not self._pending or now - self._last < self._interval_s:
            return None
        count, self._pending, self._last = self._pending, 0, now
        return count
