"""The one small interface every speech provider implements.

A provider turns one segment of text into an async iterator of PCM chunks. Everything after that
(resampling, encoding, framing, buffering) is the same for every provider.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

# Re-exported: the chunks a provider yields are media, defined below every package that shares them.
from ..media import PcmChunk as PcmChunk


@dataclass(frozen=True, slots=True)
class VoiceInfo:
    id: str
    sample_rate: int
    language: str
    name: str | None = None
    """A display name, where it differs from the id."""
    gender: str | None = None
    """Where the provider documents it."""
    decoding: str | None = None
    """Piper: `chunked` (audio leaves window by window as a sentence is decoded) or `one-shot`
    (a sentence's audio at once); None for providers where it does not apply."""


_ticks = itertools.count()


def next_tick() -> int:
    """A number larger than any returned before, from any thread: orders who started waiting first.

    (`next` on an `itertools.count` is one C call, atomic under the GIL.)
    """
    return next(_ticks)


class Urgency:
    """Whether a listener is waiting for a job's audio now, or the job is look-ahead work.

    Shared by reference, not copied: the session creates one per segment and raises it when the
    stream reaches that segment while its synthesis may still be queued; a provider that orders
    its own work (Piper's inference queue) reads it each time it picks the next job. Raised at
    most once, never lowered. Providers that do not queue work ignore it.
    """

    __slots__ = ("_since",)

    def __init__(self, urgent: bool = False) -> None:
        self._since = next_tick() if urgent else None

    @property
    def urgent(self) -> bool:
        return self._since is not None

    @property
    def since(self) -> int | None:
        """When someone started waiting (a `next_tick()`); None while it is look-ahead."""
        return self._since

    def promote(self) -> None:
        if self._since is None:
            self._since = next_tick()

    def __repr__(self) -> str:
        return f"Urgency(since={self._since})"


@dataclass(frozen=True, slots=True)
class Share:
    """Whose work a synthesis is, for a provider that shares a scarce resource between callers
    (Piper's inference workers): the API key's name and the stream. Providers that do not queue
    work ignore it."""

    key: str
    stream: str


@dataclass(frozen=True, slots=True)
class VoiceOptions:
    voice: str
    speed: float = 1.0
    urgency: Urgency | None = None
    """None: the caller did not say, so someone is taken to be waiting (scheduled as urgent)."""
    share: Share | None = None
    """None: the caller did not say; the work is shared as one anonymous stream's."""


class ProviderError(Exception):
    """Synthesis of one segment failed; the stream reports it and goes on with the next.

    The message is shown to the client: it never holds the text, a key or a URL with a secret.
    `code` is one of the protocol's `provider_*` error codes. `retryable`: the same request may
    succeed later (a timeout, a 5xx, a 429), `retry_after` says when, if the upstream said.
    """

    def __init__(
        self, message: str, *, code: str = "provider_error", retryable: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable
        self.retry_after = retry_after


class Provider(Protocol):
    name: str
    max_chars: int | None
    """The longest text one request may carry, in characters (None: no limit of its own)."""
    max_bytes: int | None
    """The same in UTF-8 bytes (Gemini counts bytes)."""

    @property
    def voices(self) -> Sequence[VoiceInfo]: ...

    def synthesize(self, text: str, options: VoiceOptions) -> AsyncGenerator[PcmChunk, None]:
        """Audio for `text`, chunk by chunk, as soon as each chunk exists.

        An async generator, so that a cancelled stream can close it (and free what it holds) at once.
        """
        ...

    async def aclose(self) -> None: ...

    def stats(self) -> dict[str, int]:
        """Counters for /healthz (e.g. inference jobs in flight)."""
        ...


@runtime_checkable
class HasBreaker(Protocol):
    """A provider that may refuse every request for a while (a cloud provider whose circuit
    breaker is open). Local providers do not implement it: they are always available."""

    def unavailable_for_s(self) -> float | None:
        """Seconds until it takes requests again; None while it takes them."""
        ...


def unavailable_for_s(provider: Provider) -> float | None:
    """How long `provider` refuses every request (None: it takes them now)."""
    return provider.unavailable_for_s() if isinstance(provider, HasBreaker) else None
