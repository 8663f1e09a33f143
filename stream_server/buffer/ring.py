"""A ring buffer of outgoing items whose capacity is measured in milliseconds of audio.

The producer (synthesis and encoding) awaits `put` while the ring is full, so a slow or stalled
client holds back the provider instead of growing memory. Control messages travel in the same
ring, in order with the audio, and weigh nothing in ms but take a slot, so the slot array bounds
them too.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

# Slots beyond the audio frames, for control messages (segment starts/ends) interleaved with them.
CONTROL_SLOTS = 64


class AudioRing(Generic[T]):
    def __init__(self, capacity_ms: float, frame_ms: float) -> None:
        if capacity_ms <= 0 or frame_ms <= 0:
            raise ValueError("capacity_ms and frame_ms must be positive")
        self.capacity_ms = float(capacity_ms)
        size = math.ceil(capacity_ms / frame_ms) + CONTROL_SLOTS
        self._items: list[T | None] = [None] * size
        self._weights: list[float] = [0.0] * size
        self._head = 0
        self._count = 0
        self._buffered_ms = 0.0
        self._not_empty = asyncio.Event()
        self._not_full = asyncio.Event()
        self._not_full.set()
        self._producer_waiting = False
        self.on_readable: Callable[[], None] | None = None
        self.on_wait: Callable[[], None] | None = None
        """Called when a `put` has to wait for room (for metrics)."""
        """Called after each put: lets a reader wait on several sources with one event."""

    @property
    def buffered_ms(self) -> float:
        return self._buffered_ms

    @property
    def producer_waiting(self) -> bool:
        """A `put` is waiting for room: the consumer is what holds the stream back."""
        return self._producer_waiting

    @property
    def slots(self) -> int:
        return len(self._items)

    def __len__(self) -> int:
        return self._count

    def _fits(self, ms: float) -> bool:
        if self._count == len(self._items):
            return False
        # An item larger than the whole capacity still goes into an empty ring, or it never would.
        return ms == 0 or self._count == 0 or self._buffered_ms + ms <= self.capacity_ms

    async def put(self, item: T, ms: float = 0.0) -> None:
        if not self._fits(ms) and self.on_wait is not None:
            self.on_wait()
        while not self._fits(ms):
            self._not_full.clear()
            self._producer_waiting = True
            try:
                await self._not_full.wait()
            finally:
                self._producer_waiting = False
        tail = (self._head + self._count) % len(self._items)
        self._items[tail] = item
        self._weights[tail] = ms
        self._count += 1
        self._buffered_ms += ms
        self._not_empty.set()
        if self.on_readable is not None:
            self.on_readable()

    async def get(self) -> T:
        while self._count == 0:
            self._not_empty.clear()
            await self._not_empty.wait()
        return self.pop()

    def pop(self) -> T:
        """The oldest item; the ring must not be empty."""
        if self._count == 0:
            raise IndexError("pop from an empty ring")
        item = self._items[self._head]
        self._items[self._head] = None
        self._buffered_ms -= self._weights[self._head]
        self._head = (self._head + 1) % len(self._items)
        self._count -= 1
        if self._count == 0:
            # Sum of floats drifts; an empty ring holds exactly nothing.
            self._buffered_ms = 0.0
        self._not_full.set()
        return item  # type: ignore[return-value]

    def clear(self) -> int:
        """Drop everything queued (barge-in); returns how many items were dropped."""
        dropped = self._count
        self._items = [None] * len(self._items)
        self._head = 0
        self._count = 0
        self._buffered_ms = 0.0
        self._not_full.set()
        return dropped
