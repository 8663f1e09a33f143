"""What the running server holds, shared by its transports: settings, providers, live streams."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from .audio.pipeline import EncoderSettings
from .audio.seams import SeamSettings
from .metrics import Metrics
from .protocol import ErrorCode, ProtocolError
from .providers import Provider, VoiceOptions, provider_default_voice
from .security import Client
from .security.access import Access
from .security.keys import ANONYMOUS
from .session import StreamLimits, StreamOptions, StreamSession
from .session.stream import Pauses
from .settings import Settings

logger = logging.getLogger(__name__)

AHEAD_ENCODERS = 2
STOP_TIMEOUT_S = 2.0

Stop = Callable[[ProtocolError], Awaitable[None]]
"""How a transport ends one of its streams early, telling the client why (idle, too long, shutdown)."""


@dataclass
class _OpenStream:
    transport: str
    client: Client
    stop: Stop | None
    opened_at: float
    stopping: bool = False


@dataclass
class ServerState:
    settings: Settings
    providers: dict[str, Provider]
    access: Access | None = None
    # Resampling and encoding for every stream; a thread per core is all the CPU there is.
    encode_executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="encode")
    )
    streams: set[StreamSession] = field(default_factory=set)
    metrics: Metrics = field(default_factory=Metrics)
    # Streams encoding audio far ahead of playback take turns two at a time, behind urgent audio.
    ahead_gate: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(AHEAD_ENCODERS))
    draining: bool = False
    """Shutting down: not ready, and new streams are refused."""
    _open: dict[StreamSession, _OpenStream] = field(default_factory=dict)
    _all_closed: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        if self.access is None:
            self.access = Access.from_settings(self.settings)
        self._all_closed.set()

    def open_stream(
        self,
        options: StreamOptions,
        transport: str,
        stream_id: str,
        *,
        client: Client = ANONYMOUS,
        stop: Stop | None = None,
    ) -> StreamSession:
        """A new stream of `transport` (websocket, sse, speech...), counted until `close_stream`.

        Raises `ProtocolError`: `shutting_down` while draining, `server_busy` when `--max-streams`
        are open (every stream holds buffers and tasks, so their number is what bounds the
        server's memory), and the client's own limits (`too_many_streams`, `rate_limited`).
        `stop` is how the server ends the stream early (idle, too long, shutdown).
        """
        if self.draining:
            raise ProtocolError(ErrorCode.SHUTTING_DOWN, "the server is shutting down; connect to another one")
        if len(self.streams) >= self.settings.max_streams:
            raise ProtocolError(ErrorCode.SERVER_BUSY, f"{len(self.streams)} streams are open; try again later")
        assert self.access is not None
        self.access.limits.open_stream(client)
        session = self._new_session(options, stream_id, client)
        self.streams.add(session)
        self._open[session] = _OpenStream(transport, client, stop, time.monotonic())
        self._all_closed.clear()
        self.metrics.active_streams.labels(transport).inc()
        return session

    async def replace_stream(self, old: StreamSession, options: StreamOptions) -> StreamSession:
        """A stream with other options in place of `old`, which has not streamed anything yet
        (a `config` after the URL's parameters): same client, slot and age, not a new stream."""
        record = self._open[old]
        session = self._new_session(options, old.stream_id, record.client)  # first: it may raise
        await old.aclose()
        self._open.pop(old, None)
        self.streams.discard(old)
        self.streams.add(session)
        self._open[session] = record
        return session

    def _new_session(self, options: StreamOptions, stream_id: str, client: Client) -> StreamSession:
        limits = self.access.limits if self.access is not None else None

        def charge(chars: int) -> None:
            if limits is not None:
                limits.take_chars(client, chars)

        return StreamSession(
            options,
            self.providers[options.provider],
            self.limits,
            self.encode_executor,
            stream_id,
            fallbacks=self.fallbacks(options),
            metrics=self.metrics,
            charge=charge,
        )

    async def close_stream(self, session: StreamSession) -> None:
        await session.aclose()
        record = self._open.pop(session, None)
        if record is not None:
            self.streams.discard(session)
            assert self.access is not None
            self.access.limits.close_stream(record.client)
            self.metrics.active_streams.labels(record.transport).dec()
            if not self._open:
                self._all_closed.set()

    def client_of(self, session: StreamSession) -> Client:
        record = self._open.get(session)
        return record.client if record is not None else ANONYMOUS

    # -- streams the server ends itself ---------------------------------------------------------

    async def enforce_timeouts(self, now: float | None = None) -> int:
        """Stop streams open longer than `--max-stream-s`, or waiting for text longer than
        `--idle-timeout-s` with nothing to send; returns how many were stopped."""
        now = time.monotonic() if now is None else now
        s = self.settings
        due = []
        for session, record in self._open.items():
            if record.stopping or record.stop is None:
                continue
            if now - record.opened_at >= s.max_stream_s:
                due.append((record, ProtocolError(ErrorCode.STREAM_TOO_LONG, f"streams last at most {s.max_stream_s:g} s")))
            elif session.idle_s(now) >= s.idle_timeout_s:
                due.append((record, ProtocolError(ErrorCode.IDLE_TIMEOUT, f"no text for {s.idle_timeout_s:g} s")))
        for record, reason in due:
            await self._stop(record, reason)
        return len(due)

    async def drain(self, grace_s: float) -> int:
        """Shutdown: refuse new streams, give running ones `grace_s` to finish, then stop the
        rest (`shutting_down`); returns how many had to be stopped."""
        self.draining = True
        if await self.wait_all_closed(grace_s):
            return 0
        left = [r for r in self._open.values() if not r.stopping and r.stop is not None]
        reason = ProtocolError(ErrorCode.SHUTTING_DOWN, "the server is shutting down")
        for record in left:
            await self._stop(record, reason)
        return len(left)

    async def wait_all_closed(self, timeout_s: float) -> bool:
        try:
            await asyncio.wait_for(self._all_closed.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def _stop(self, record: _OpenStream, reason: ProtocolError) -> None:
        record.stopping = True
        assert record.stop is not None
        try:
            # A transport's stop only queues its goodbye; the timeout keeps one slow transport
            # from holding up the sweep that stops the others.
            await asyncio.wait_for(record.stop(reason), STOP_TIMEOUT_S)
        except Exception:  # one transport's failure must not end the sweep that stops the others
            logger.exception("stream.stop_failed")

    @property
    def limits(self) -> StreamLimits:
        s = self.settings
        return StreamLimits(
            ring_ms=s.ring_ms,
            lookahead_segments=s.lookahead_segments,
            max_pending_chars=s.max_pending_chars,
            encoder=EncoderSettings(opus_bitrate=s.opus_bitrate, opus_complexity=s.opus_complexity),
            seams=SeamSettings(
                fade_ms=s.fade_ms,
                max_leading_silence_ms=s.max_leading_silence_ms,
                max_trailing_silence_ms=s.max_trailing_silence_ms,
            ),
            ahead_gate=self.ahead_gate,
            pauses=Pauses(
                sentence_ms=s.sentence_pause_ms, paragraph_ms=s.paragraph_pause_ms, clause_ms=s.clause_pause_ms
            ),
        )

    def fallbacks(self, options: StreamOptions) -> list[tuple[Provider, VoiceOptions]]:
        """The fallback chain for a stream: each provider with its default voice, the stream's speed."""
        chain = []
        for name in self.settings.fallback:
            if name == options.provider:
                continue
            provider = self.providers[name]
            voices = [v.id for v in provider.voices]
            configured = provider_default_voice(self.settings, name)
            voice = configured if configured in voices else voices[0]
            chain.append((provider, VoiceOptions(voice=voice, speed=options.speed)))
        return chain

    async def aclose(self) -> None:
        for provider in self.providers.values():
            await provider.aclose()
        await asyncio.to_thread(self.encode_executor.shutdown, wait=True, cancel_futures=True)
