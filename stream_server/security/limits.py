"""Per-key limits: streams open at once, new streams per minute, characters per minute.

Rates are token buckets that hold a minute's allowance: a client may burst up to it, then goes at
the allowed rate. A request bigger than a whole minute's allowance is let through when the bucket
is full and leaves it in debt, so no single text is refused forever. The anonymous client (a server
without keys, on loopback) has no per-key limits; the global ones still apply.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ..protocol import ErrorCode, ProtocolError
from .keys import Client


@dataclass
class TokenBucket:
    per_minute: int
    level: float
    at: float

    @classmethod
    def full(cls, per_minute: int, now: float) -> TokenBucket:
        return cls(per_minute, float(per_minute), now)

    def take(self, amount: float, now: float) -> float:
        """Take `amount`; returns 0 when taken, else the seconds until it could be."""
        self.level = min(self.per_minute, self.level + (now - self.at) * self.per_minute / 60)
        self.at = now
        needed = min(amount, self.per_minute)
        if self.level >= needed:
            self.level -= amount
            return 0.0
        return (needed - self.level) * 60 / self.per_minute


@dataclass
class _Usage:
    streams: int = 0
    buckets: dict[str, TokenBucket] = field(default_factory=dict)


@dataclass(frozen=True)
class KeyDefaults:
    max_streams: int
    streams_per_minute: int
    chars_per_minute: int


class ClientLimits:
    def __init__(self, defaults: KeyDefaults, clock: Callable[[], float] = time.monotonic) -> None:
        self._defaults = defaults
        self._clock = clock
        # One entry per configured key that was used: bounded by the keys there are.
        self._usage: dict[str, _Usage] = {}

    def open_stream(self, client: Client) -> None:
        """Count a new stream of `client`; raises `ProtocolError` (too_many_streams, rate_limited)."""
        if client.key is None:
            return
        usage = self._usage.setdefault(client.key, _Usage())
        most = self._limit(client, "max_streams")
        if most and usage.streams >= most:
            raise too_many_streams(usage.streams, most)
        self._take(client, usage, "streams_per_minute", 1)
        usage.streams += 1

    def close_stream(self, client: Client) -> None:
        if client.key is not None and (usage := self._usage.get(client.key)) is not None:
            usage.streams = max(0, usage.streams - 1)

    def take_chars(self, client: Client, chars: int) -> None:
        """Charge `chars` of text to `client`; raises `ProtocolError(rate_limited)` and charges nothing."""
        if client.key is None or chars == 0:
            return
        self._take(client, self._usage.setdefault(client.key, _Usage()), "chars_per_minute", chars)

    def streams_of(self, client: Client) -> int:
        usage = self._usage.get(client.key or "")
        return usage.streams if usage else 0

    def limit(self, client: Client, name: str) -> int:
        """`client`'s own value of the limit `name` (from the keys file), else the server's."""
        return self._limit(client, name)

    def _limit(self, client: Client, name: str) -> int:
        return client.limits.get(name, getattr(self._defaults, name))

    def _take(self, client: Client, usage: _Usage, name: str, amount: int) -> None:
        per_minute = self._limit(client, name)
        if not per_minute:
            return
        now = self._clock()
        bucket = usage.buckets.get(name)
        if bucket is None or bucket.per_minute != per_minute:
            bucket = usage.buckets[name] = TokenBucket.full(per_minute, now)
        wait_s = bucket.take(amount, now)
        if wait_s:
            raise rate_limited(per_minute, RATES[name], wait_s)


RATES = {"streams_per_minute": "new streams", "chars_per_minute": "characters"}
"""The per-minute limits, and what each counts (for the refusal's message)."""


def too_many_streams(open_now: int, most: int) -> ProtocolError:
    return ProtocolError(ErrorCode.TOO_MANY_STREAMS, f"this key has {open_now} streams open (limit {most})")


def rate_limited(per_minute: int, what: str, wait_s: float) -> ProtocolError:
    return ProtocolError(
        ErrorCode.RATE_LIMITED,
        f"this key is limited to {per_minute} {what} per minute; retry in {wait_s:.1f} s",
        retry_after_s=wait_s,
    )


class StreamLease(Protocol):
    """What `KeyLimits.open_stream` hands out: the stream counts against its key until released."""

    def release(self) -> None:
        """The stream is over (idempotent; no I/O: a shared lease is let go in the background)."""


class KeyLimits(Protocol):
    """The per-key limits as the server applies them: in this process (`LocalKeyLimits`), or across
    every process sharing a Redis (`cluster.limits.SharedKeyLimits`), chosen at start-up."""

    async def open_stream(self, client: Client) -> StreamLease:
        """Count a new stream of `client`; raises `ProtocolError` (too_many_streams, rate_limited)."""
        ...

    async def take_chars(self, client: Client, chars: int) -> None:
        """Charge `chars` of text to `client`; raises `ProtocolError(rate_limited)` and charges nothing."""
        ...


class _LocalLease:
    __slots__ = ("_client", "_limits")

    def __init__(self, limits: ClientLimits | None, client: Client) -> None:
        self._limits = limits
        self._client = client

    def release(self) -> None:
        if self._limits is not None:
            self._limits.close_stream(self._client)
            self._limits = None


NO_LEASE: StreamLease = _LocalLease(None, Client(None))
"""The anonymous client's streams count against no key."""


class LocalKeyLimits:
    """`KeyLimits` kept in this process: `ClientLimits`, which decides without waiting on anything."""

    def __init__(self, limits: ClientLimits) -> None:
        self.limits = limits

    async def open_stream(self, client: Client) -> StreamLease:
        return self.open_stream_now(client)

    def open_stream_now(self, client: Client) -> StreamLease:
        if client.key is None:
            return NO_LEASE
        self.limits.open_stream(client)
        return _LocalLease(self.limits, client)

    async def take_chars(self, client: Client, chars: int) -> None:
        self.limits.take_chars(client, chars)
