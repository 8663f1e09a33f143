"""Every accepted socket, from accept to close: the count `--max-connections` bounds, and the
watch that closes those past their deadlines."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from ..logs import log_event
from .deadlines import ConnectionLimits, Expired, ThrottledCount

logger = logging.getLogger(__name__)

# A flood (of refusals, timeouts) is logged as one line with a count at most this often.
REPORT_INTERVAL_S = 10.0


class Watched(Protocol):
    def check(self, now: float) -> Expired | None:
        """Close the connection if it missed a deadline; say which."""
        ...


class ConnectionTable:
    def __init__(self, limits: ConnectionLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._open: set[Watched] = set()
        self._freed = asyncio.Event()
        self._reports: dict[str, ThrottledCount] = {}

    def __len__(self) -> int:
        return len(self._open)

    @property
    def over_capacity(self) -> bool:
        """More sockets are open than `--max-connections` (the one asking counts itself)."""
        return len(self._open) > self.limits.max_connections

    def now(self) -> float:
        return self._clock()

    def admit(self, connection: Watched) -> bool:
        """Count a new socket; False when it is past the hard cap and must be refused unread
        (it is counted still, until it is closed: it holds a descriptor)."""
        admitted = len(self._open) < self.limits.hard_cap
        self._open.add(connection)
        if not admitted:
            self.report("connection.refused", open=len(self._open), max_connections=self.limits.max_connections)
        return admitted

    def discard(self, connection: Watched) -> None:
        self._open.discard(connection)
        self._freed.set()

    async def wait_freed(self) -> None:
        """Until a socket closes (its descriptor is free)."""
        self._freed.clear()
        await self._freed.wait()

    def report(self, event: str, **fields: object) -> None:
        """A warning for `event`, throttled: at most one line per REPORT_INTERVAL_S, counting the
        occurrences since the last one (the rest are logged by `watch` when due)."""
        throttle = self._reports.setdefault(event, ThrottledCount(REPORT_INTERVAL_S))
        if (count := throttle.add(self._clock())) is not None:
            log_event(logger, event, level=logging.WARNING, count=count, **fields)

    async def watch(self) -> None:
        """Check every socket's deadlines, for as long as the server runs."""
        while True:
            await asyncio.sleep(self.limits.check_interval_s)
            now = self._clock()
            for connection in list(self._open):
                if (expired := connection.check(now)) is not None:
                    self.report(f"connection.{expired.value}")
            for event, throttle in self._reports.items():
                if (count := throttle.due(now)) is not None:
                    log_event(logger, event, level=logging.WARNING, count=count)
