"""Token buckets in Redis: `security.limits.TokenBucket`'s arithmetic, atomic, on Redis' clock.

The bucket of a key's per-minute limit is a hash `{level, at, per}`; taking from it is one script,
so two servers taking at once never both spend the same allowance, and its time is Redis' `TIME`,
so the servers' clocks never matter. `TAKE_FUNCTION` is the same arithmetic as
`TokenBucket.take` line for line (tests/test_cluster_buckets.py runs both on the same cases):
refill for the time passed, let a request bigger than the whole allowance through when the bucket
is full (leaving it in debt), else refuse with the seconds until it could be taken.

Keys: `ss:bucket:<limit>:<hashed key name>`, one small hash per key and limit, with a TTL of the
time it takes to refill (a full bucket and a missing one are the same), at most a minute past
any debt.
"""

from __future__ import annotations

TAKE_FUNCTION = """
local function take(level, at, per, amount, now)
  level = math.min(per, level + (now - at) * per / 60)
  local needed = math.min(amount, per)
  if level >= needed then
    return level - amount, 0
  end
  return level, (needed - level) * 60 / per
end

"""

BUCKET_FUNCTION = (
    TAKE_FUNCTION
    + """
-- The bucket at `bucket` (a hash), taken from at `now` (seconds, Redis' clock): the seconds to wait
-- (0: taken). A new bucket, or one whose limit changed, starts full.
local function take_from(bucket, per, amount, now)
  local stored = redis.call('HMGET', bucket, 'level', 'at', 'per')
  local level, at = tonumber(stored[1]), tonumber(stored[2])
  if level == nil or at == nil or tonumber(stored[3]) ~= per then
    level, at = per, now
  end
  local wait
  level, wait = take(level, at, per, amount, now)
  -- %.17g: the level and time as exactly as Python's floats (tostring keeps 14 digits).
  redis.call('HSET', bucket, 'level', string.format('%.17g', level), 'at', string.format('%.17g', now), 'per', per)
  redis.call('PEXPIRE', bucket, math.ceil((per - level) * 60000 / per) + 1000)
  return wait
end

local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
"""
)

TAKE = (
    BUCKET_FUNCTION
    + """
-- KEYS[1] the bucket; ARGV: per_minute, amount. Returns the seconds to wait ("0": taken), as a
-- string (Redis would truncate a number to an integer).
return tostring(take_from(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), now))
"""
)
