"""The Redis token bucket runs the same arithmetic as the local one: `TAKE_FUNCTION` (Lua, in a
real redis-server) against `TokenBucket.take` (Python) on the same sequences of takes."""

from __future__ import annotations

from stream_server.cluster.buckets import TAKE_FUNCTION
from stream_server.security.limits import TokenBucket

from .redis_server import redis_server

# Each case: per_minute, then (seconds since the start, amount) takes.
CASES = [
    (60, [(0, 10), (0, 50), (0, 1), (0.5, 1), (1, 1), (30, 40)]),
    (100, [(0, 250), (1, 1), (60, 1), (150, 100), (150, 1)]),
    (12, [(0, 12), (2, 1), (4.9, 1), (5, 1), (5, 5)]),
    (1000, [(0, 999), (0, 2), (0.06, 2), (0.1, 0)]),
]

STEP = (
    TAKE_FUNCTION
    + """
local level, wait = take(tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]))
return {string.format('%.17g', level), string.format('%.17g', wait)}
"""
)


def test_the_lua_bucket_decides_as_the_python_one() -> None:
    with redis_server() as server, server.client() as client:
        step = client.register_script(STEP)
        for per_minute, takes in CASES:
            bucket = TokenBucket.full(per_minute, 0.0)
            for now, amount in takes:
                # From the same state, one take each.
                raw_level, raw_wait = step(args=[repr(bucket.level), repr(bucket.at), per_minute, amount, now])
                level, wait = float(raw_level), float(raw_wait)
                expected_wait = bucket.take(amount, now)
                assert abs(wait - expected_wait) < 1e-6, (per_minute, now, amount)
                assert abs(level - bucket.level) < 1e-6, (per_minute, now, amount)
