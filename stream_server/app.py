"""The ASGI application: routes, and a lifespan that loads the providers before serving."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import Route, WebSocketRoute

from .providers import Provider, build_providers
from .server_state import ServerState
from .settings import Settings
from .transports.health import healthz
from .transports.websocket import stream_endpoint


def create_app(settings: Settings, providers: Mapping[str, Provider] | None = None) -> Starlette:
    """`providers` lets tests share already-loaded providers; by default they are built here."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        owned = providers is None
        loaded = dict(providers) if providers is not None else await asyncio.to_thread(build_providers, settings)
        state = ServerState(settings=settings, providers=loaded)
        app.state.server = state
        try:
            yield
        finally:
            for session in list(state.streams):
                await session.aclose()
            if owned:
                await state.aclose()
            else:
                state.encode_executor.shutdown(wait=True, cancel_futures=True)

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            WebSocketRoute("/v1/tts/stream", stream_endpoint),
        ],
        lifespan=lifespan,
    )
