"""A bounded queue of a stream's outputs whose capacity is measured in milliseconds of audio.

Sans I/O: whoever fills it asks `fits` first and waits (in its own way) until the reader made
room, so a slow or stalled client holds back synthesis instead of growing memory. Control
outputs (segment starts and ends, warnings) travel in the same queue, in order with the audio;
they weigh nothing in ms but take a slot, so the slot count bounds them too.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")

# Slots beyond the audio frames, for control outputs interleaved with them.
CONTROL_SLOTS = 64


class AudioRing(Generic[T]):
    def __init__(self, capacity_ms: float, frame_ms: float) -> None:
        if capacity_ms <= 0 or frame_ms <= 0:
            raise ValueError("capacity_ms and frame_ms must be positive")
        self.capacity_ms = float(capacity_ms)
        self.slots = math.ceil(capacity_ms / frame_ms) + CONTROL_SLOTS
        self._items: deque[tuple[T, float]] = deque()
        self._buffered_ms = 0.0

    @property
    def buffered_ms(self) -> float:
        return self._buffered_ms

    def __len__(self) -> int:
        return len(self._items)

    def fits(self, ms: float = 0.0) -> bool:
        """Whether an item weighing `ms` can go in now."""
        count = len(self._items)
        if count == self.slots:
            return False
        # An item larger than the whole capacity still goes into an empty ring, or it never would.
        return ms == 0 or count == 0 or self._buffered_ms + ms <= self.capacity_ms

    def push(self, item: T, ms: float = 0.0) -> None:
        if not self.fits(ms):
            raise OverflowError(f"no room for {ms} ms (holding {self._buffered_ms} ms in {len(self)} items)")
        self._items.append((item, ms))
        self._buffered_ms += ms

    def peek(self) -> T:
        """The oldest item, left in place; the ring must not be empty."""
        return self._items[0][0]

    def pop(self) -> T:
        """The oldest item; the ring must not be empty."""
        item, ms = self._items.popleft()
        # Sums of floats drift; an empty ring holds exactly nothing.
        self._buffered_ms = self._buffered_ms - ms if self._items else 0.0
        return item

    def clear(self) -> int:
        """Drop everything queued (barge-in); returns how many items were dropped."""
        dropped = len(self._items)
        self._items.clear()
        self._buffered_ms = 0.0
        return dropped
