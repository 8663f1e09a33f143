"""Browser tokens: `POST /v1/tokens` trades an API key for a short-lived, single-use token.

A browser cannot set headers on a WebSocket, and a page must not hold the API key; it fetches a
token from its own backend and passes it as `?token=`. The token is signed (HMAC-SHA256 over the
key's name, the expiry and a nonce) with a secret made at start-up, and is valid once: its nonce is
outstanding until used or expired. Outstanding tokens are capped per key, so minting is bounded.
Several server processes behind one balancer would need a shared secret and nonce store.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable

import msgspec

from ..protocol import ErrorCode, ProtocolError

MAX_OUTSTANDING_PER_KEY = 32
# base64url(claims) "." base64url(HMAC-SHA256), the signature 43 characters without padding.
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{43}")


def looks_like_token(value: str) -> bool:
    """Whether `value` has the shape of a browser token, whatever parameter carries it."""
    return _TOKEN_SHAPE.fullmatch(value) is not None


class _Claims(msgspec.Struct, forbid_unknown_fields=True):
    k: str  # the key's name
    e: float  # expiry, seconds since the epoch
    n: str  # nonce


class TokenIssuer:
    def __init__(self, ttl_s: float, *, clock: Callable[[], float] = time.time, secret: bytes | None = None) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._secret = secret or secrets.token_bytes(32)
        self._outstanding: dict[str, _Claims] = {}

    @property
    def ttl_s(self) -> float:
        return self._ttl_s

    def mint(self, key: str) -> str:
        self._forget_expired()
        if sum(1 for claims in self._outstanding.values() if claims.k == key) >= MAX_OUTSTANDING_PER_KEY:
            raise ProtocolError(
                ErrorCode.RATE_LIMITED,
                f"{MAX_OUTSTANDING_PER_KEY} unused tokens are outstanding for this key; use or let some expire",
                retry_after_s=self._ttl_s,
            )
        claims = _Claims(k=key, e=self._clock() + self._ttl_s, n=secrets.token_hex(16))
        self._outstanding[claims.n] = claims
        payload = msgspec.json.encode(claims)
        return f"{_b64(payload)}.{_b64(self._sign(payload))}"

    def redeem(self, token: str) -> str:
        """The key's name the token was minted for; the token cannot be used again.

        Raises `ProtocolError(unauthorized)` saying which: a malformed token, one this server did
        not sign (forged, or from before a restart), an expired one, or one already used.
        """
        malformed = _refused("the token is malformed (expected the token from POST /v1/tokens, as is)")
        payload_b64, dot, signature_b64 = token.partition(".")
        if not dot or len(token) > 512:
            raise malformed
        try:
            payload, signature = _unb64(payload_b64), _unb64(signature_b64)
        except ValueError:
            raise malformed from None
        if not hmac.compare_digest(signature, self._sign(payload)):
            raise _refused("the token was not issued by this server (or it restarted since): get a new one")
        claims = msgspec.json.decode(payload, type=_Claims)  # signed by us: well-formed
        # Past its expiry it is refused as expired, whether or not it was used.
        if claims.e <= self._clock():
            self._outstanding.pop(claims.n, None)
            raise _refused("the token expired: get a new one from POST /v1/tokens")
        if self._outstanding.pop(claims.n, None) is None:
            raise _refused("the token was already used (each opens one WebSocket): get a new one")
        return claims.k

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()

    def _forget_expired(self) -> None:
        now = self._clock()
        for nonce in [n for n, claims in self._outstanding.items() if claims.e <= now]:
            del self._outstanding[nonce]


def _refused(message: str) -> ProtocolError:
    return ProtocolError(ErrorCode.UNAUTHORIZED, message)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    # binascii.Error and non-ASCII input are both ValueErrors.
    return base64.urlsafe_b64decode(text.encode("ascii") + b"=" * (-len(text) % 4))
