"""Text (whole or streamed) in, all audio with per-segment timings out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Unpack

from .errors import ServerError
from .messages import AudioChunk, Done, Error, Event, Ready, SegmentEnd, SegmentStart, Warning
from .stream import DEFAULT_URL, Stream, StreamOptions, connect, text_pieces

MAX_UNSPOKEN_CHARS = 50_000
"""Text sent ahead of the audio: half the server's default `max_pending_chars`, so a fast source
(a file, a quick LLM) waits for the speech instead of having text refused."""


@dataclass(frozen=True, slots=True)
class SegmentTiming:
    seq: int
    text: str
    audio_ms: float
    text_sent_at: float | None
    """`time.monotonic()` when its last character was sent (None if not found in the text sent)."""
    first_audio_at: float | None
    ended_at: float

    @property
    def latency_ms(self) -> float | None:
        """From its last character sent to its first audio received."""
        if self.text_sent_at is None or self.first_audio_at is None:
            return None
        return 1000 * (self.first_audio_at - self.text_sent_at)


@dataclass(slots=True)
class SynthesisResult:
    ready: Ready
    """The stream's settings: `format`, `sample_rate`, ..."""
    audio: bytes
    """All audio frames joined: for `pcm`, s16le mono samples at `ready.sample_rate`."""
    segments: list[SegmentTiming]
    done: Done
    ttfa_ms: float | None
    """Time to first audio as this client saw it: first text sent to first audio received."""
    warnings: list[Warning] = field(default_factory=list)

    @property
    def sample_rate(self) -> int:
        return self.ready.sample_rate

    @property
    def audio_ms(self) -> float:
        return self.done.audio_ms


class ResultCollector:
    """Builds a `SynthesisResult` from a stream's events (the CLI feeds it too, for its timings)."""

    def __init__(self, stream: Stream, keep_audio: bool = True) -> None:
        assert stream.ready is not None, "the stream is not open"
        self._stream = stream
        self._ready = stream.ready
        self._keep_audio = keep_audio
        self._audio = bytearray()
        self._segments: list[SegmentTiming] = []
        self._open: SegmentStart | None = None
        self._open_first_audio: float | None = None
        self._first_audio_at: float | None = None
        self._warnings: list[Warning] = []
        self._done: Done | None = None

    @property
    def audio_ms(self) -> float:
        """Audio received so far, by the segment ends."""
        return sum(segment.audio_ms for segment in self._segments)

    def add(self, event: Event) -> SegmentTiming | None:
        """Take one event; returns the segment it completed, if it did."""
        match event:
            case AudioChunk():
                if self._keep_audio:
                    self._audio += event.data
                if self._first_audio_at is None:
                    self._first_audio_at = event.received_at
                if self._open_first_audio is None:
                    self._open_first_audio = event.received_at
            case SegmentStart():
                self._open, self._open_first_audio = event, None
            case SegmentEnd():
                start, self._open = self._open, None
                timing = SegmentTiming(
                    seq=event.seq,
                    text=start.text if start is not None and start.seq == event.seq else "",
                    audio_ms=event.audio_ms,
                    text_sent_at=start.text_sent_at if start is not None else None,
                    first_audio_at=self._open_first_audio,
                    ended_at=event.received_at,
                )
                self._segments.append(timing)
                return timing
            case Warning():
                self._warnings.append(event)
            case Done():
                self._done = event
        return None

    @property
    def ttfa_ms(self) -> float | None:
        sent_at = self._stream.first_text_sent_at
        if sent_at is None or self._first_audio_at is None:
            return None
        return 1000 * (self._first_audio_at - sent_at)

    def result(self) -> SynthesisResult:
        assert self._done is not None, "the stream is not done"
        return SynthesisResult(
            ready=self._ready,
            audio=bytes(self._audio),
            segments=self._segments,
            done=self._done,
            ttfa_ms=self.ttfa_ms,
            warnings=self._warnings,
        )


async def feed(stream: Stream, text: str | AsyncIterable[str], max_unspoken_chars: int = MAX_UNSPOKEN_CHARS) -> None:
    """Send all of `text` as it comes, then `end`."""
    chunks = _each(text_pieces(text)) if isinstance(text, str) else text
    async for chunk in chunks:
        await stream.wait_unspoken_below(max_unspoken_chars)
        await stream.send_text(chunk)
    await stream.end()


async def _each(items: Iterable[str]) -> AsyncIterator[str]:
    for item in items:
        yield item


async def run_stream(
    stream: Stream,
    text: str | AsyncIterable[str],
    on_event: Callable[[Event], None],
    max_unspoken_chars: int = MAX_UNSPOKEN_CHARS,
) -> None:
    """Feed `text` while handing every event to `on_event`, until `Done`. The first failure of
    either side (the text source, the server, `on_event`) ends both and is raised."""
    feeder = asyncio.create_task(feed(stream, text, max_unspoken_chars))

    async def receive() -> None:
        async for event in stream:
            on_event(event)

    receiver = asyncio.create_task(receive())
    try:
        finished, _ = await asyncio.wait({feeder, receiver}, return_when=asyncio.FIRST_COMPLETED)
        if receiver not in finished:
            feeder.result()  # the text source failed: raise that
        await receiver
    finally:
        for task in (feeder, receiver):
            task.cancel()
        await asyncio.gather(feeder, receiver, return_exceptions=True)


def _raise_errors(event: Event) -> None:
    if isinstance(event, Error):
        raise ServerError(event.code, event.message, event.seq)


async def synthesize(
    text: str | AsyncIterable[str],
    *,
    url: str = DEFAULT_URL,
    api_key: str | None = None,
    token: str | None = None,
    open_timeout: float = 10.0,
    **options: Unpack[StreamOptions],
) -> SynthesisResult:
    """Speak `text` (a string, or chunks as they are produced) and collect the audio.

    Any `error` from the server raises `ServerError`. Unless `max_lead_ms` is given the stream is
    unpaced: the audio is collected, not played, so it may come as fast as it is made.
    """
    options.setdefault("max_lead_ms", 0)
    async with connect(url, api_key=api_key, token=token, open_timeout=open_timeout, **options) as stream:
        collector = ResultCollector(stream)

        def on_event(event: Event) -> None:
            _raise_errors(event)
            collector.add(event)

        await run_stream(stream, text, on_event)
        return collector.result()


def synthesize_sync(
    text: str | Iterable[str],
    *,
    url: str = DEFAULT_URL,
    api_key: str | None = None,
    token: str | None = None,
    open_timeout: float = 10.0,
    **options: Unpack[StreamOptions],
) -> SynthesisResult:
    """`synthesize` for scripts without an event loop; `text` may be any iterable of chunks (a
    generator of LLM tokens), read in a worker thread so a slow source does not stall the audio."""
    chunks = text if isinstance(text, str) else _from_thread(iter(text))
    coroutine = synthesize(chunks, url=url, api_key=api_key, token=token, open_timeout=open_timeout, **options)
    return asyncio.run(coroutine)


async def _from_thread(chunks: Iterator[str]) -> AsyncIterator[str]:
    while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
        yield chunk
