"""Browser tokens: `POST /v1/tokens` trades an API key for a short-lived, single-use token.

A browser cannot set headers on a WebSocket, and a page must not hold the API key; it fetches a
token from its own backend and passes it as `?token=`. The token is signed (HMAC-SHA256 over the
key's name, the expiry and a nonce) with a secret made at start-up, and is valid once: its nonce is
outstanding until used or expired. Outstanding tokens are capped per key, so minting is bounded.
With `--redis-url` the servers of a cluster share the secret and the nonces instead
(`cluster/tokens.py`): the same token shape, redeemable once on any of them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from typing import Protocol

import msgspec

from ..protocol import ErrorCode, ProtocolError

MAX_OUTSTANDING_PER_KEY = 32
# base64url(claims) "." base64url(HMAC-SHA256), the signature 43 characters without padding.
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{43}")


def looks_like_token(value: str) -> bool:
    """Whether `value` has the shape of a browser token, whatever parameter carries it."""
    return _TOKEN_SHAPE.fullmatch(value) is not None


class Claims(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    k: str  # the key's name
    e: float  # expiry, seconds since the epoch
    n: str  # nonce
    c: bool = False  # minted for the cluster: its nonce is in Redis (cluster/tokens.py)


def new_nonce() -> str:
    return secrets.token_hex(16)


def seal(claims: Claims, secret: bytes) -> str:
    """The token carrying `claims`, signed with `secret`."""
    payload = msgspec.json.encode(claims)
    return f"{_b64(payload)}.{_b64(_sign(secret, payload))}"


def unseal(token: str, secret: bytes) -> Claims:
    """The claims of a token signed with `secret`; raises `ProtocolError(unauthorized)` for a
    malformed token or one signed with another secret. Expiry and use are the caller's to check."""
    malformed = _refused("the token is malformed (expected the token from POST /v1/tokens, as is)")
    payload_b64, dot, signature_b64 = token.partition(".")
    if not dot or len(token) > 512:
        raise malformed
    try:
        payload, signature = _unb64(payload_b64), _unb64(signature_b64)
    except ValueError:
        raise malformed from None
    if not hmac.compare_digest(signature, _sign(secret, payload)):
        raise _refused("the token was not issued by this server (or it restarted since): get a new one")
    return msgspec.json.decode(payload, type=Claims)  # signed by us: well-formed


def minted_for_cluster(token: str) -> bool:
    """Whether `token`'s claims say it was minted for the cluster. Unverified: it only chooses the
    store that verifies it (a forged flag fails that store's signature check)."""
    try:
        return b'"c":true' in _unb64(token.partition(".")[0])
    except ValueError:
        return False


def expired() -> ProtocolError:
    return _refused("the token expired: get a new one from POST /v1/tokens")


def already_used() -> ProtocolError:
    return _refused("the token was already used (each opens one WebSocket): get a new one")


def too_many_outstanding(ttl_s: float) -> ProtocolError:
    return ProtocolError(
        ErrorCode.RATE_LIMITED,
        f"{MAX_OUTSTANDING_PER_KEY} unused tokens are outstanding for this key; use or let some expire",
        retry_after_s=ttl_s,
    )


class TokenStore(Protocol):
    """Browser tokens as the server mints and redeems them: in this process (`LocalTokens`) or
    across a cluster (`cluster.tokens.SharedTokens`), chosen at start-up."""

    @property
    def ttl_s(self) -> float: ...

    async def mint(self, key: str) -> str: ...

    async def redeem(self, token: str) -> str:
        """The key's name; raises `ProtocolError(unauthorized)` (see `TokenIssuer.redeem`)."""
        ...


class TokenIssuer:
    def __init__(self, ttl_s: float, *, clock: Callable[[], float] = time.time, secret: bytes | None = None) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._secret = secret or secrets.token_bytes(32)
        self._outstanding: dict[str, Claims] = {}

    @property
    def ttl_s(self) -> float:
        return self._ttl_s

    def mint(self, key: str) -> str:
        self._forget_expired()
        if sum(1 for claims in self._outstanding.values() if claims.k == key) >= MAX_OUTSTANDING_PER_KEY:
            raise too_many_outstanding(self._ttl_s)
        claims = Claims(k=key, e=self._clock() + self._ttl_s, n=new_nonce())
        self._outstanding[claims.n] = claims
        return seal(claims, self._secret)

    def redeem(self, token: str) -> str:
        """The key's name the token was minted for; the token cannot be used again.

        Raises `ProtocolError(unauthorized)` saying which: a malformed token, one this server did
        not sign (forged, or from before a restart), an expired one, or one already used.
        """
        claims = unseal(token, self._secret)
        # Past its expiry it is refused as expired, whether or not it was used.
        if claims.e <= self._clock():
            self._outstanding.pop(claims.n, None)
            raise expired()
        if self._outstanding.pop(claims.n, None) is None:
            raise already_used()
        return claims.k

    def _forget_expired(self) -> None:
        now = self._clock()
        for nonce in [n for n, claims in self._outstanding.items() if claims.e <= now]:
            del self._outstanding[nonce]


class LocalTokens:
    """`TokenStore` kept in this process: a `TokenIssuer`, which decides without waiting."""

    def __init__(self, issuer: TokenIssuer) -> None:
        self.issuer = issuer

    @property
    def ttl_s(self) -> float:
        return self.issuer.ttl_s

    async def mint(self, key: str) -> str:
        return self.issuer.mint(key)

    async def redeem(self, token: str) -> str:
        return self.issuer.redeem(token)


def _sign(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, payload, hashlib.sha256).digest()


def _refused(message: str) -> ProtocolError:
    return ProtocolError(ErrorCode.UNAUTHORIZED, message)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    # binascii.Error and non-ASCII input are both ValueErrors.
    return base64.urlsafe_b64decode(text.encode("ascii") + b"=" * (-len(text) % 4))
