"""Per-key limits across every server sharing a Redis (`--redis-url`).

The same limits as `security.limits` (streams open at once, new streams per minute, characters per
minute), the same refusals (`too_many_streams`, `rate_limited` with `retry_after`), decided in
Redis so that every process and machine counts against one allowance:

- a stream is a lease in the key's lease set (`cluster/leases.py`), refreshed by its process and
  forgotten within the lease TTL if that process dies;
- the per-minute limits are token buckets in Redis (`cluster/buckets.py`, the same arithmetic as
  the local ones);
- opening a stream is one script (lease count, then the streams-per-minute bucket, then the
  lease), so a refusal takes nothing and two servers never both take the last place.

While Redis does not answer, the process's own `LocalKeyLimits` decides (RedisLink logs the outage
once; `/readyz` lists "redis" in `degraded`): streams keep opening, on limits that count this
process only. A stream opened then stays counted locally until it ends. Redis keys name keys by
their hash (`hashed`), never by name.
"""

from __future__ import annotations

from ..security.keys import Client
from ..security.limits import NO_LEASE, RATES, LocalKeyLimits, StreamLease, rate_limited, too_many_streams
from .buckets import TAKE as TAKE_FROM_BUCKET
from .buckets import BUCKET_FUNCTION
from .leases import LeaseKeeper, new_member
from .link import RedisUnavailable, hashed, key

OPEN = (
    BUCKET_FUNCTION
    + """
-- KEYS[1] the key's lease set, KEYS[2] its streams-per-minute bucket.
-- ARGV: member, max_streams (0: none), ttl_ms, streams_per_minute (0: none).
-- Returns {"ok"}, {"streams", open now} or {"rate", seconds to wait}.
local now_ms = math.floor(now * 1000)
local most, ttl, per = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if most > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
  local held = redis.call('ZCARD', KEYS[1])
  if held >= most then
    return {'streams', tostring(held)}
  end
end
if per > 0 then
  local wait = take_from(KEYS[2], per, 1, now)
  if wait > 0 then
    return {'rate', tostring(wait)}
  end
end
if most > 0 then
  redis.call('ZADD', KEYS[1], now_ms + ttl, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return {'ok'}
"""
)


class _SharedLease:
    __slots__ = ("_keeper", "_member")

    def __init__(self, keeper: LeaseKeeper, member: str) -> None:
        self._keeper = keeper
        self._member = member

    def release(self) -> None:
        self._keeper.release(self._member)


def stream_leases_key(client_key: str) -> str:
    return key("lease", "streams", hashed(client_key))


def bucket_key(limit: str, client_key: str) -> str:
    return key("bucket", limit, hashed(client_key))


class SharedKeyLimits:
    """`KeyLimits` held in Redis, with `local` deciding while Redis is away."""

    def __init__(self, keeper: LeaseKeeper, local: LocalKeyLimits) -> None:
        self._keeper = keeper
        self._link = keeper.link
        self._local = local
        self._open = self._link.client.register_script(OPEN)
        self._take = self._link.client.register_script(TAKE_FROM_BUCKET)

    async def open_stream(self, client: Client) -> StreamLease:
        if client.key is None:
            return NO_LEASE
        if not self._link.available:
            return self._local.open_stream_now(client)
        limits = self._local.limits
        most = limits.limit(client, "max_streams")
        per_minute = limits.limit(client, "streams_per_minute")
        member = new_member()
        keys = [stream_leases_key(client.key), bucket_key("streams_per_minute", client.key)]
        args = [member, most, self._keeper.ttl_ms, per_minute]
        try:
            verdict, *value = await self._link.call(lambda r: self._open(keys=keys, args=args))
        except RedisUnavailable:
            return self._local.open_stream_now(client)
        if verdict == b"streams":
            raise too_many_streams(int(value[0]), most)
        if verdict == b"rate":
            raise rate_limited(per_minute, RATES["streams_per_minute"], float(value[0]))
        if not most:
            return NO_LEASE  # nothing to count: no cap on streams open at once
        self._keeper.adopt(member, keys[0])
        return _SharedLease(self._keeper, member)

    async def take_chars(self, client: Client, chars: int) -> None:
        if client.key is None or chars == 0:
            return
        per_minute = self._local.limits.limit(client, "chars_per_minute")
        if not per_minute:
            return
        if not self._link.available:
            return await self._local.take_chars(client, chars)
        bucket = bucket_key("chars_per_minute", client.key)
        try:
            wait = await self._link.call(lambda r: self._take(keys=[bucket], args=[per_minute, chars]))
        except RedisUnavailable:
            return await self._local.take_chars(client, chars)
        wait_s = float(wait)
        if wait_s:
            raise rate_limited(per_minute, RATES["chars_per_minute"], wait_s)

