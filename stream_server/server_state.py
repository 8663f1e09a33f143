"""What the running server holds, shared by its transports: settings, providers, live streams."""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from .audio.pipeline import EncoderSettings
from .audio.seams import SeamSettings
from .metrics import Metrics
from .protocol import ErrorCode, ProtocolError
from .providers import Provider, VoiceOptions
from .session import StreamLimits, StreamOptions, StreamSession
from .session.stream import Pauses
from .settings import Settings


@dataclass
class ServerState:
    settings: Settings
    providers: dict[str, Provider]
    # Resampling and encoding for every stream; a thread per core is all the CPU there is.
    encode_executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="encode")
    )
    streams: set[StreamSession] = field(default_factory=set)
    metrics: Metrics = field(default_factory=Metrics)
    _transports: dict[StreamSession, str] = field(default_factory=dict)

    def open_stream(
        self, options: StreamOptions, transport: str, stream_id: str
    ) -> StreamSession:
        """A new stream of `transport` (websocket, sse, speech...), counted until `close_stream`.

        Raises `ProtocolError(server_busy)` when `--max-streams` are open: every stream holds
        buffers and tasks, so their number is what bounds the server's memory.
        """
        if len(self.streams) >= self.settings.max_streams:
            raise ProtocolError(ErrorCode.SERVER_BUSY, f"{len(self.streams)} streams are open; try again later")
        session = StreamSession(
            options,
            self.providers[options.provider],
            self.limits,
            self.encode_executor,
            stream_id,
            fallbacks=self.fallbacks(options),
            metrics=self.metrics,
        )
        self.streams.add(session)
        self._transports[session] = transport
        self.metrics.active_streams.labels(transport).inc()
        return session

    async def close_stream(self, session: StreamSession) -> None:
        await session.aclose()
        transport = self._transports.pop(session, None)
        if transport is not None:
            self.streams.discard(session)
            self.metrics.active_streams.labels(transport).dec()

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
            configured = getattr(self.settings, f"{name}_voice", None)
            voice = configured if configured in voices else voices[0]
            chain.append((provider, VoiceOptions(voice=voice, speed=options.speed)))
        return chain

    async def aclose(self) -> None:
        for provider in self.providers.values():
            await provider.aclose()
        await asyncio.to_thread(self.encode_executor.shutdown, wait=True, cancel_futures=True)
