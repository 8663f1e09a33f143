"""What every cloud provider shares: one pooled HTTP client, explicit timeouts, retries only before
a segment's first audio, rate-limit awareness, a circuit breaker and a concurrency limit.

A concrete provider subclasses `HttpProvider` and writes one method, `_attempt`: a single request
for one segment, yielding PCM as the response streams in and raising `ProviderError` (via
`raise_for_status` and friends) on anything else. Everything here wraps that attempt.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from ..logs import log_event
from ..media import PcmChunk
from .base import ProviderError, VoiceInfo, VoiceOptions
from .slots import LocalSlots, SlotPool
from .spec import SharedHttpSettings

logger = logging.getLogger(__name__)

AUTH = "provider_auth"
REJECTED = "provider_rejected"
RATE_LIMITED = "provider_rate_limited"
UNAVAILABLE = "provider_unavailable"
TIMEOUT = "provider_timeout"
BAD_RESPONSE = "provider_bad_response"


@dataclass(frozen=True, slots=True)
class HttpSettings:
    base_url: str
    api_key: str | None = field(default=None, repr=False)  # never in a log line or an error
    model: str = ""
    voice: str = ""
    connect_timeout_s: float = 5.0
    first_byte_timeout_s: float = 2.0
    """From a segment's request to its first audio: one budget for the slot, retries and back-off."""
    read_timeout_s: float = 30.0
    """Between two pieces of the answer once it streams."""
    max_concurrency: int = 8
    max_retries: int = 2
    backoff_s: float = 0.25
    max_backoff_s: float = 8.0
    breaker_failures: int = 5
    """Consecutive failed segments that open the breaker."""
    breaker_cooldown_s: float = 30.0

    @classmethod
    def for_provider(cls, own: CloudProviderSettings, shared: SharedHttpSettings, **overrides: Any) -> HttpSettings:
        """From a cloud provider's own settings (--<name>-timeout-s is to first audio) and the
        shared --http-* / --breaker-* ones."""
        return cls(
            **{
                "base_url": own.base_url,
                "api_key": own.api_key,
                "model": own.model,
                "voice": own.voice,
                "connect_timeout_s": shared.connect_timeout_s,
                "first_byte_timeout_s": own.timeout_s,
                "read_timeout_s": shared.read_timeout_s,
                "max_concurrency": own.concurrency,
                "max_retries": shared.retries,
                "breaker_failures": shared.breaker_failures,
                "breaker_cooldown_s": shared.breaker_cooldown_s,
                **overrides,
            }
        )


class CloudProviderSettings(Protocol):
    """The settings every cloud provider declares (OpenAISettings, GeminiSettings, TTSAISettings)."""

    base_url: str
    api_key: str | None
    model: str
    voice: str
    concurrency: int
    timeout_s: float


def configured_voice(settings: CloudProviderSettings) -> str:
    """A cloud provider's default voice: its --<name>-voice."""
    return settings.voice


class CircuitBreaker:
    """Closed → open after `failures` failures in a row → one trial after `cooldown_s` → closed.

    While open, segments fail at once (and a fallback provider takes them) instead of each one
    waiting out timeouts against an upstream that is down.
    """

    def __init__(self, failures: int, cooldown_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._threshold = failures
        self._cooldown = cooldown_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial = False

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        return "half_open" if self._clock() - self._opened_at >= self._cooldown else "open"

    def allow(self) -> bool:
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._trial:
            self._trial = True  # one request probes the upstream; the others still fail fast
            return True
        return False

    def closed_for_s(self) -> float | None:
        """Seconds until `allow` says yes again; None when it would now."""
        if self._opened_at is None:
            return None
        left = self._cooldown - (self._clock() - self._opened_at)
        if left > 0:
            return left
        # Half open: free when no trial is out; while one is, ask again soon (it decides).
        return min(1.0, self._cooldown) if self._trial else None

    def end_trial(self) -> None:
        """The trial request ended without saying whether the upstream is back (no-op after
        `success` or `failure`): the next request may probe instead."""
        self._trial = False

    def success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._trial = False

    def failure(self) -> None:
        self._failures += 1
        self._trial = False
        if self._failures >= self._threshold or self._opened_at is not None:
            self._opened_at = self._clock()


class RateLimit:
    """Remembers `X-RateLimit-*` and `Retry-After` answers, and waits before a request that would
    be refused anyway."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._blocked_until = 0.0

    def update(self, headers: Mapping[str, str], *, refused: bool = False) -> float | None:
        """Reads the headers; returns the seconds to wait that they name, if any."""
        wait = retry_after(headers)
        remaining = headers.get("x-ratelimit-remaining")
        if wait is None and remaining is not None and remaining.strip() == "0":
            wait = _reset_in(headers.get("x-ratelimit-reset"), self._clock)
        if wait is None and refused:
            wait = 1.0
        if wait is not None:
            self._blocked_until = max(self._blocked_until, self._clock() + wait)
        return wait

    def delay(self) -> float:
        return max(0.0, self._blocked_until - self._clock())


def retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, when.timestamp() - time.time()) if when else None


def _reset_in(value: str | None, clock: Callable[[], float]) -> float | None:
    """`X-RateLimit-Reset`: seconds until the reset, or a Unix time (values past a year)."""
    if not value:
        return None
    try:
        reset = float(value)
    except ValueError:
        return None
    return max(0.0, reset - time.time()) if reset > 365 * 86400 else reset


async def raise_for_status(response: httpx.Response, provider: str) -> None:
    """A non-2xx answer as the `ProviderError` a client should see (the body is read, not shown)."""
    if response.is_success:
        return
    await response.aread()
    status = response.status_code
    if status in (401, 403):
        raise ProviderError(f"{provider} refused the server's credentials ({status})", code=AUTH)
    if status == 429:
        raise ProviderError(
            f"{provider} is rate limiting ({status})",
            code=RATE_LIMITED,
            retryable=True,
            retry_after=retry_after(response.headers),
        )
    if status in (408, 409) or status >= 500:
        raise ProviderError(
            f"{provider} is unavailable ({status})",
            code=UNAVAILABLE,
            retryable=True,
            retry_after=retry_after(response.headers),
        )
    raise ProviderError(f"{provider} rejected the request ({status}: {_short_reason(response)})", code=REJECTED)


def _short_reason(response: httpx.Response) -> str:
    """The upstream's own error message, cut short: it tells the client what to fix (a voice...)."""
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase or "error"
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else error if isinstance(error, str) else None
    return str(message or response.reason_phrase or "error")[:200]


class HttpProvider:
    """Base of the cloud providers. Subclasses set `name`, `voices`, the text limits, and write
    `_attempt` (one request) and `_headers` (their auth)."""

    name = "http"
    max_chars: int | None = None
    max_bytes: int | None = None

    def __init__(self, settings: HttpSettings, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        timeout = httpx.Timeout(
            connect=settings.connect_timeout_s,
            read=settings.read_timeout_s,
            write=settings.read_timeout_s,
            pool=settings.first_byte_timeout_s,
        )
        limits = httpx.Limits(
            max_connections=settings.max_concurrency, max_keepalive_connections=settings.max_concurrency
        )
        # One client for the provider's life: connections (and TLS sessions) are reused, so a
        # sentence does not pay for a handshake.
        self._client = httpx.AsyncClient(
            base_url=settings.base_url.rstrip("/"),
            timeout=timeout,
            limits=limits,
            headers=self._headers(),
            transport=transport,
        )
        self._slots: SlotPool = LocalSlots(settings.max_concurrency)
        self._breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_cooldown_s)
        self._rate_limit = RateLimit()
        self._requests = 0
        self._in_flight = 0
        """Requests holding a concurrency slot now."""
        self._failures = 0

    # -- for subclasses --------------------------------------------------------------------------

    @property
    def voices(self) -> Sequence[VoiceInfo]:
        raise NotImplementedError

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.settings.api_key}"} if self.settings.api_key else {}

    def _attempt(self, text: str, options: VoiceOptions) -> AsyncGenerator[PcmChunk, None]:
        """One request for `text`; yields its audio as it streams in."""
        raise NotImplementedError

    def _observe(self, response: httpx.Response) -> None:
        """Subclasses call this on every response, so rate-limit headers are heeded."""
        self._rate_limit.update(response.headers, refused=response.status_code == 429)

    # -- the Provider interface ----------------------------------------------------------------

    async def synthesize(self, text: str, options: VoiceOptions) -> AsyncGenerator[PcmChunk, None]:
        """The segment's audio, with retries while none went out.

        One budget (`first_byte_timeout_s`, i.e. --<name>-timeout-s) covers everything before the
        first audio: waiting for a concurrency slot or the upstream's rate limit, every attempt and
        the back-off between them. A stalled upstream therefore costs one budget, not one per
        attempt, and the fallback chain (or `provider_timeout`) comes when it is spent.
        """
        settings = self.settings
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.first_byte_timeout_s
        for attempt in range(settings.max_retries + 1):
            trial = self._breaker.state == "half_open"  # this attempt probes the upstream
            if not self._breaker.allow():
                raise ProviderError(
                    f"{self.name} is unavailable (failing repeatedly; retrying later)", code=UNAVAILABLE
                )
            try:
                await self._rate_limit_wait(deadline)
                async with self._slot(deadline):
                    produced = False
                    try:
                        self._requests += 1
                        async with aclosing(self._attempt(text, options)) as chunks:
                            first = await _first(chunks, deadline, settings.first_byte_timeout_s, self.name)
                            if first is None:
                                raise ProviderError(f"{self.name} answered without audio", code=BAD_RESPONSE)
                            produced = True
                            # The slot is held while the upstream answers: the caller takes the
                            # chunks as they come (session/synthesis.py), never at a client's pace.
                            yield first
                            async for chunk in chunks:
                                yield chunk
                        self._breaker.success()
                        return
                    except (ProviderError, httpx.HTTPError) as exc:
                        error = self._failed(exc, attempt, produced)
                        wait_s = self._backoff(attempt, error.retry_after)
                        # Once audio went out, a retry would say it twice: the segment ends with the error.
                        final = produced or not error.retryable or attempt == settings.max_retries
                        if final or loop.time() + wait_s >= deadline:
                            raise error from exc
            finally:
                if trial:
                    # An attempt that ended before the upstream answered (no slot, the rate
                    # limit, a barge-in, a 4xx) says nothing of its health: another may probe.
                    self._breaker.end_trial()
            await asyncio.sleep(wait_s)  # back-off before the next attempt, not a race fix

    def _failed(self, exc: ProviderError | httpx.HTTPError, attempt: int, produced: bool) -> ProviderError:
        error = _as_provider_error(exc, self.name)
        self._failures += 1
        if error.code in (UNAVAILABLE, TIMEOUT, BAD_RESPONSE):
            self._breaker.failure()
        log_event(
            logger, "provider.attempt_failed", level=logging.WARNING, provider=self.name,
            code=error.code, attempt=attempt, produced_audio=produced,
        )  # fmt: skip
        return error

    async def _rate_limit_wait(self, deadline: float) -> None:
        """Wait out the upstream's own rate limit (holding no slot), or fail if it outlasts the budget."""
        delay = self._rate_limit.delay()
        if not delay:
            return
        if asyncio.get_running_loop().time() + delay >= deadline:
            raise ProviderError(
                f"{self.name} is rate limiting; free again in {delay:.1f} s", code=RATE_LIMITED, retry_after=delay
            )
        await asyncio.sleep(delay)  # the upstream's own rate limit, not a race fix

    @asynccontextmanager
    async def _slot(self, deadline: float) -> AsyncIterator[None]:
        """One of the --<name>-concurrency request slots, waited for no longer than the budget."""
        slot = self._slots.slot(deadline)
        try:
            await slot.__aenter__()
        except TimeoutError:
            raise ProviderError(
                f"{self.name} had no free request slot within {self.settings.first_byte_timeout_s:g} s "
                f"(all {self.settings.max_concurrency} in use)", code=TIMEOUT,
            ) from None  # fmt: skip
        self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1
            await slot.__aexit__(None, None, None)

    def share_slots(self, slots: SlotPool) -> None:
        """Count `--<name>-concurrency` in `slots` from now on (the app, with `--redis-url`: every
        server's requests). Before the provider serves: requests in flight keep their slots."""
        self._slots = slots

    @property
    def slot_scope(self) -> str:
        """What shares one concurrency cap: the upstream (its URL) and this provider's name."""
        return f"{self.name} {self.settings.base_url}"

    def _backoff(self, attempt: int, hinted: float | None) -> float:
        if hinted is not None:
            return min(hinted, self.settings.max_backoff_s)
        ceiling = min(self.settings.max_backoff_s, self.settings.backoff_s * 2**attempt)
        return random.uniform(ceiling / 2, ceiling)  # jitter: retries from many streams spread out

    async def aclose(self) -> None:
        await self._client.aclose()

    def unavailable_for_s(self) -> float | None:
        return self._breaker.closed_for_s()

    def stats(self) -> dict[str, int]:
        return {
            "requests": self._requests,
            "in_flight": self._in_flight,
            "failures": self._failures,
            "breaker_open": int(self._breaker.state != "closed"),
        }


async def _first(
    chunks: AsyncGenerator[PcmChunk, None], deadline: float, timeout_s: float, name: str
) -> PcmChunk | None:
    try:
        async with asyncio.timeout_at(deadline):
            return await anext(chunks)
    except StopAsyncIteration:
        return None
    except TimeoutError:
        raise ProviderError(f"{name} sent no audio within {timeout_s:g} s", code=TIMEOUT, retryable=True) from None


def _as_provider_error(exc: Exception, name: str) -> ProviderError:
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, httpx.TimeoutException):
        return ProviderError(f"{name} timed out", code=TIMEOUT, retryable=True)
    if isinstance(exc, httpx.RemoteProtocolError):
        # The body was cut off: a retry is safe only if no audio went out (the caller checks).
        return ProviderError(f"{name} closed the connection mid-answer", code=UNAVAILABLE, retryable=True)
    if isinstance(exc, httpx.TransportError):
        return ProviderError(f"{name} could not be reached", code=UNAVAILABLE, retryable=True)
    return ProviderError(f"{name} request failed", code=UNAVAILABLE, retryable=True)
