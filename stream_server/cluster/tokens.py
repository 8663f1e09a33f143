"""Browser tokens across a cluster: minted on any server, redeemed once on any server.

The token keeps its shape (`security/tokens.py`: signed claims `{k, e, n}`, here with `c`: a
cluster token). Two things are shared through Redis:

- the signing secret, `ss:tokens:secret`: 32 random bytes made by whichever server needs it first
  (`SET NX`, so every server ends with the same one) and read once per process. One key, no TTL:
  it is the cluster's, like a setting, but nobody has to make, distribute or rotate it by hand;
  flushing Redis makes a new one (and every outstanding token is refused, as after a restart);
- each token's nonce, `ss:token:<hashed nonce>` → the hashed key name, with the token's TTL,
  consumed by an atomic `GETDEL`-like script: of any number of servers redeeming one token at once,
  exactly one gets it. `ss:tokens:out:<hashed key name>`, a sorted set of the key's outstanding
  nonces by expiry, keeps `MAX_OUTSTANDING_PER_KEY` per key across the cluster (capped; TTL of a
  token's lifetime).

While Redis does not answer, tokens are minted and redeemed by this process alone (its own
secret: such a token opens a WebSocket on the server that minted it only), and a cluster token
cannot be checked: it is refused with `server_busy` (retry, or get a new token).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from ..protocol import ErrorCode, ProtocolError
from ..security.tokens import (
    MAX_OUTSTANDING_PER_KEY,
    Claims,
    LocalTokens,
    already_used,
    expired,
    minted_for_cluster,
    new_nonce,
    seal,
    too_many_outstanding,
    unseal,
)
from .leases import NOW_MS
from .link import RedisLink, RedisUnavailable, hashed, key

SECRET_KEY = key("tokens", "secret")

MINT = (
    NOW_MS
    + """
-- KEYS[1] the key's outstanding set, KEYS[2] the nonce's record; ARGV: nonce, key hash, ttl_ms, cap.
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('SET', KEYS[2], ARGV[2], 'PX', ttl)
return 1
"""
)

REDEEM = """
-- KEYS[1] the nonce's record, KEYS[2] the key's outstanding set; ARGV[1] the nonce.
-- Returns the key hash it was minted for, once; nil when used or expired.
local owner = redis.call('GET', KEYS[1])
if not owner then
  return nil
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return owner
"""


def _nonce_key(nonce: str) -> str:
    return key("token", hashed(nonce))


def _outstanding_key(name: str) -> str:
    return key("tokens", "out", hashed(name))


class SharedTokens:
    """`TokenStore` shared through Redis, with `local` taking over while Redis is away."""

    def __init__(self, link: RedisLink, local: LocalTokens, *, clock: Callable[[], float] = time.time) -> None:
        self._link = link
        self._local = local
        self._clock = clock
        self._secret: bytes | None = None
        self._mint = link.client.register_script(MINT)
        self._redeem = link.client.register_script(REDEEM)

    @property
    def ttl_s(self) -> float:
        return self._local.ttl_s

    async def mint(self, key_name: str) -> str:
        if not self._link.available:
            return await self._local.mint(key_name)
        try:
            secret = await self._shared_secret()
            claims = Claims(k=key_name, e=self._clock() + self.ttl_s, n=new_nonce(), c=True)
            keys = [_outstanding_key(key_name), _nonce_key(claims.n)]
            args = [claims.n, hashed(key_name), int(self.ttl_s * 1000), MAX_OUTSTANDING_PER_KEY]
            minted = await self._link.call(lambda r: self._mint(keys=keys, args=args))
        except RedisUnavailable:
            return await self._local.mint(key_name)
        if not minted:
            raise too_many_outstanding(self.ttl_s)
        return seal(claims, secret)

    async def redeem(self, token: str) -> str:
        if not minted_for_cluster(token):
            return await self._local.redeem(token)
        try:
            claims = await self._unseal(token)
            keys = [_nonce_key(claims.n), _outstanding_key(claims.k)]
            owner = await self._link.call(lambda r: self._redeem(keys=keys, args=[claims.n]))
        except RedisUnavailable:
            raise ProtocolError(
                ErrorCode.SERVER_BUSY, "browser tokens cannot be checked right now; retry, or get a new token"
            ) from None
        if owner is None:
            # Redis' TTL decides; the claim's expiry only says which refusal it was.
            raise expired() if claims.e <= self._clock() else already_used()
        if owner.decode() != hashed(claims.k):
            raise already_used()  # not reachable without the secret; refused all the same
        return claims.k

    async def _unseal(self, token: str) -> Claims:
        secret = await self._shared_secret()
        try:
            return unseal(token, secret)
        except ProtocolError:
            # Redis was flushed since this process read the secret: read it again, once.
            self._secret = None
            if await self._shared_secret() == secret:
                raise
            return unseal(token, await self._shared_secret())

    async def _shared_secret(self) -> bytes:
        if self._secret is None:
            candidate = secrets.token_bytes(32)
            await self._link.call(lambda r: r.set(SECRET_KEY, candidate, nx=True))
            secret = await self._link.call(lambda r: r.get(SECRET_KEY))
            if secret is None:  # flushed between the two: take ours next time
                raise RedisUnavailable("the token secret vanished")
            self._secret = bytes(secret)
        return self._secret
