"""A cloud provider's request slots (`--<name>-concurrency`): how many of its requests may be in
flight at once. `LocalSlots` counts this process's; with `--redis-url` the app gives the provider
`cluster.slots.SharedSlots`, which counts every server's (an upstream's limit is per account)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol


class SlotPool(Protocol):
    def slot(self, deadline: float) -> AbstractAsyncContextManager[None]:
        """Hold one slot for the block; raises `TimeoutError` if none is free by `deadline`
        (the event loop's clock)."""
        ...


class LocalSlots:
    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self._free = asyncio.Semaphore(concurrency)

    @asynccontextmanager
    async def slot(self, deadline: float) -> AsyncIterator[None]:
        async with asyncio.timeout_at(deadline):
            await self._free.acquire()
        try:
            yield
        finally:
            self._free.release()
