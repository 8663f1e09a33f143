"""Leases in Redis: a capped count of holders that forgets a holder who stops refreshing.

A stream of a key (per-key `max_streams`) and a cloud provider's request (`--<name>-concurrency`)
each hold a lease: a member of a sorted set whose score is when it expires, by Redis' own clock
(`TIME`, so the servers' clocks never matter). Taking one is one atomic script: expired members
are dropped, the rest counted against the cap, the new one added. The holder's `LeaseKeeper`
refreshes every lease of its process together, a third of the TTL apart; a process that dies stops
refreshing, and its leases stop counting within the TTL. Releasing is a `ZREM`, done by the keeper
in the background, so that releasing never waits (a release that fails expires by itself).

Keys: `ss:lease:<scope>:<hashed name>`, a sorted set of at most its cap live members (plus, for a
moment, members past their expiry), with a TTL of one lease's lifetime, renewed by every take and
refresh: a set whose holders all died disappears by itself.
"""

from __future__ import annotations

import logging
import secrets

import anyio

from ..logs import log_event
from .link import RedisLink, RedisUnavailable

logger = logging.getLogger(__name__)

NOW_MS = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
"""

TAKE = (
    NOW_MS
    + """
-- KEYS[1] the lease set; ARGV: member, cap, ttl_ms. Returns {taken (0/1), holders before}.
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = redis.call('ZCARD', KEYS[1])
if held >= tonumber(ARGV[2]) then
  return {0, held}
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl)
return {1, held}
"""
)

REFRESH = (
    NOW_MS
    + """
-- KEYS: lease sets; ARGV[1] ttl_ms, ARGV[i + 1] the member held in KEYS[i]. A lease that expired
-- meanwhile (Redis was away longer than the TTL) is taken again: its stream is still real.
local ttl = tonumber(ARGV[1])
for i, set in ipairs(KEYS) do
  redis.call('ZADD', set, now + ttl, ARGV[i + 1])
  redis.call('PEXPIRE', set, ttl)
end
return #KEYS
"""
)

REFRESH_BATCH = 256
"""Leases refreshed per script call: one call never holds Redis long."""


def new_member() -> str:
    """A lease's name in its set: random, so that no two holders anywhere collide."""
    return secrets.token_hex(8)


class LeaseKeeper:
    """The leases this process holds, kept alive in Redis while held. One per process; `run()`
    runs in the lifespan's task group. Holds at most as many leases as the process has streams and
    cloud requests (both capped by settings)."""

    def __init__(self, link: RedisLink, ttl_s: float) -> None:
        self.link = link
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self._take = link.client.register_script(TAKE)
        self._refresh = link.client.register_script(REFRESH)
        self._held: dict[str, str] = {}
        """member → its set's key."""
        self._released: dict[str, str] = {}
        """Let go and not yet removed from Redis (bounded: each was held)."""
        self._wake = anyio.Event()

    @property
    def held(self) -> int:
        return len(self._held)

    async def take(self, set_key: str, cap: int) -> tuple[str | None, int]:
        """A lease in `set_key` if fewer than `cap` are live: (its member or None, holders before).
        Raises `RedisUnavailable`."""
        member = new_member()
        taken, held = await self.link.call(lambda r: self._take(keys=[set_key], args=[member, cap, self.ttl_ms]))
        if not taken:
            return None, int(held)
        self._held[member] = set_key
        return member, int(held)

    def adopt(self, member: str, set_key: str) -> None:
        """Keep alive a lease another script took (`cluster/limits.py` takes a stream's lease
        together with its rate limit)."""
        self._held[member] = set_key

    def release(self, member: str) -> None:
        """Let go of a lease (no I/O here: the keeper removes it from Redis at once)."""
        set_key = self._held.pop(member, None)
        if set_key is not None:
            self._released[member] = set_key
            self._wake.set()

    async def run(self) -> None:
        """Refresh the held leases a third of the TTL apart, remove released ones as they come."""
        interval_s = self.ttl_ms / 3000
        next_refresh = anyio.current_time() + interval_s
        while True:
            with anyio.move_on_after(max(0.0, next_refresh - anyio.current_time())):
                await self._wake.wait()
            self._wake = anyio.Event()
            await self._remove_released()
            if anyio.current_time() >= next_refresh:
                await self._refresh_held()
                next_refresh = anyio.current_time() + interval_s

    async def _remove_released(self) -> None:
        released, self._released = self._released, {}
        if not released:
            return
        try:
            async with self.link.client.pipeline(transaction=False) as pipe:
                for member, set_key in released.items():
                    pipe.zrem(set_key, member)
                await self.link.call(lambda r: pipe.execute())
        except RedisUnavailable:
            pass  # the leases expire by themselves within the TTL

    async def _refresh_held(self) -> None:
        held = list(self._held.items())
        for start in range(0, len(held), REFRESH_BATCH):
            batch = held[start : start + REFRESH_BATCH]
            keys = [set_key for _, set_key in batch]
            args = [self.ttl_ms, *(member for member, _ in batch)]
            try:
                await self.link.call(lambda r, keys=keys, args=args: self._refresh(keys=keys, args=args))
            except RedisUnavailable:
                # RedisLink logged the outage; leases are taken again on the next refresh after it.
                log_event(logger, "cluster.lease_refresh_failed", level=logging.DEBUG, leases=len(held))
                return
