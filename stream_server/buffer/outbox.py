"""What a transport sends next: urgent control replies first, then the stream's ring in order.

Replies to the client's own messages (`ready`, `error` for a bad message, `cancelled`) must not
wait behind seconds of queued audio, so they take a small lane of their own. The lane is bounded:
a client that floods bad messages while not reading overflows it and is disconnected.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

CONTROL_LANE = 32


class RingSource(Protocol[T_co]):
    """The reading side of an `AudioRing`."""

    on_readable: Callable[[], None] | None

    def __len__(self) -> int: ...

    def pop(self) -> T_co: ...


class OutboxOverflow(Exception):
    """The client let more than `CONTROL_LANE` replies pile up without reading."""


class Outbox(Generic[T]):
    def __init__(self) -> None:
        self.readable = asyncio.Event()
        self._control: deque[T] = deque()
        self._ring: RingSource[T] | None = None

    def attach(self, ring: RingSource[T]) -> None:
        """Read from `ring` from now on (a stream's ring; replaced only before any audio)."""
        self._ring = ring
        ring.on_readable = self.readable.set
        if len(ring):
            self.readable.set()

    def send_control(self, item: T) -> None:
        if len(self._control) >= CONTROL_LANE:
            raise OutboxOverflow(f"more than {CONTROL_LANE} unread control messages")
        self._control.append(item)
        self.readable.set()

    async def get(self) -> T:
        while True:
            if self._control:
                return self._control.popleft()
            if self._ring is not None and len(self._ring):
                return self._ring.pop()
            self.readable.clear()
            await self.readable.wait()
