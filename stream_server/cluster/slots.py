"""Cloud providers' request slots shared by every server (`--<name>-concurrency` per account).

A request holds a lease in `ss:lease:slots:<hashed provider and URL>` (`cluster/leases.py`: capped
at the concurrency, TTL of a lease's lifetime) for as long as the upstream answers; a server that
dies mid-request frees its slots within the TTL. A request that finds every slot taken waits, up to
its first-audio budget like a local one, and asks again when a request of this process ends or
after a short back-off (another server's request may have ended). While Redis does not answer, the
provider's own `LocalSlots` count this process's requests only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from ..providers.slots import LocalSlots
from .leases import LeaseKeeper
from .link import RedisUnavailable, hashed, key

FIRST_RETRY_S = 0.01
MAX_RETRY_S = 0.2
"""Between two asks for a slot, when none of this process's requests ends meanwhile."""


class SharedSlots:
    def __init__(self, keeper: LeaseKeeper, scope: str, local: LocalSlots) -> None:
        self._keeper = keeper
        self._key = key("lease", "slots", hashed(scope))
        self._local = local
        self._freed = anyio.Event()

    @asynccontextmanager
    async def slot(self, deadline: float) -> AsyncIterator[None]:
        member = None
        if self._keeper.link.available:
            try:
                async with asyncio.timeout_at(deadline):
                    member = await self._take()
            except RedisUnavailable:
                member = None
        if member is None:
            async with self._local.slot(deadline):
                yield
            return
        try:
            yield
        finally:
            self._keeper.release(member)
            self._freed.set()
            self._freed = anyio.Event()

    async def _take(self) -> str:
        retry_s = FIRST_RETRY_S
        while True:
            member, _ = await self._keeper.take(self._key, self._local.concurrency)
            if member is not None:
                return member
            with anyio.move_on_after(retry_s):
                await self._freed.wait()
            retry_s = min(retry_s * 2, MAX_RETRY_S)
