"""What the running server holds, shared by its transports: settings, providers, the resources
every stream shares, the stream factory and the admission of streams."""

from __future__ import annotations

import asyncio
import os
import uuid
from concurrent.futures import ThreadPoolExecutor

from .admission import Admission
from .cluster import RedisLink
from .metrics import Metrics
from .providers import Provider
from .security import Client
from .security.access import Access
from .security.keys import ANONYMOUS
from .session import Stream, StreamFactory, StreamOptions, SynthesisResources
from .settings import Settings

# Streams encoding audio far ahead of playback take turns, this many at a time, behind urgent audio.
AHEAD_ENCODERS = 2


class ServerState:
    def __init__(
        self,
        settings: Settings,
        providers: dict[str, Provider],
        access: Access | None = None,
        redis: RedisLink | None = None,
    ) -> None:
        self.settings = settings
        self.redis = redis
        """The cluster's shared state (`--redis-url`); None: this process keeps its own."""
        self.providers = providers
        self.access = access or Access.from_settings(settings)
        self.metrics = Metrics()
        # MP3 and AAC encoding for every stream; a thread per core is all the CPU there is.
        self.encode_executor = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="encode")
        self.resources = SynthesisResources(
            encode_executor=self.encode_executor, metrics=self.metrics, ahead_gate=asyncio.Semaphore(AHEAD_ENCODERS)
        )
        self.factory = StreamFactory(settings, providers, self.resources)
        self.admission = Admission(settings.max_streams, self.access.limits, self.metrics)

    @property
    def streams(self) -> list[Stream]:
        return list(self.admission)

    @property
    def draining(self) -> bool:
        return self.admission.draining

    async def open_stream(
        self, options: StreamOptions, transport: str, *, client: Client = ANONYMOUS, charged_before: bool = False
    ) -> Stream:
        """A new stream of `transport` (websocket, sse_session, speech...), counted until
        `close_stream`. Raises `ProtocolError` when it may not open (see `Admission.admit`).
        `charged_before`: its text is charged to the key's characters per minute where it is
        accepted, not as the stream takes it (a cluster's SSE session: any server takes its text)."""
        lease = await self.admission.admit(client)
        limits = self.access.limits

        async def charge(chars: int) -> None:
            if not charged_before:
                await limits.take_chars(client, chars)

        # Without keys every caller is anonymous and one key: its streams share the local voice
        # fairly among themselves (see providers/fair_queue.py).
        try:
            stream = self.factory.stream(options, uuid.uuid4().hex[:12], charge=charge, key=client.label)
        except BaseException:
            lease.release()
            raise
        self.admission.add(stream, transport, client, lease)
        return stream

    def close_stream(self, stream: Stream) -> None:
        """The stream is over: its buffers and its slot are free (idempotent)."""
        stream.close()
        self.admission.release(stream)

    def client_of(self, stream: Stream) -> Client:
        return self.admission.client_of(stream) or ANONYMOUS

    async def aclose(self) -> None:
        for provider in self.providers.values():
            await provider.aclose()
        await self.shutdown_executor()
        await self.close_redis()

    async def close_redis(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()

    async def shutdown_executor(self) -> None:
        await asyncio.to_thread(self.encode_executor.shutdown, wait=True, cancel_futures=True)
