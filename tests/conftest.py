"""Shared fixtures: real uvicorn servers on loopback ports, real WebSocket clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn

from stream_server.providers import Provider
from stream_server.providers.tone import ToneProvider
from stream_server.server import uvicorn_config
from stream_server.server_state import ServerState
from stream_server.settings import Settings
from stream_server.settings_loader import settings_from_raw


@dataclass
class RunningServer:
    server: uvicorn.Server
    port: int

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/tts/stream"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def state(self) -> ServerState:
        return self.server.config.loaded_app.app.state.server  # type: ignore[union-attr]

    async def health(self) -> dict[str, Any]:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{self.http_url}/healthz")
            response.raise_for_status()
            return response.json()


@asynccontextmanager
async def serving(config: uvicorn.Config) -> AsyncIterator[uvicorn.Server]:
    """A real uvicorn server in this event loop, on the port it was given (0: any free one)."""
    server = uvicorn.Server(config)
    # The test owns the loop and signals; uvicorn must not install its handlers.
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())

    async def wait_started() -> None:
        # uvicorn offers a flag, not an event: poll it (bounded by the timeout below).
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.005)

    await asyncio.wait_for(wait_started(), timeout=30)
    try:
        yield server
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=30)


def bound_port(server: uvicorn.Server) -> int:
    return server.servers[0].sockets[0].getsockname()[1]


@asynccontextmanager
async def run_server(settings: Settings, providers: dict[str, Provider]) -> AsyncIterator[RunningServer]:
    async with serving(uvicorn_config(settings, providers)) as server:
        yield RunningServer(server, bound_port(server))


@asynccontextmanager
async def run_asgi(app: Any) -> AsyncIterator[str]:
    """Any ASGI app (a provider emulator) under a real uvicorn on a loopback port: its base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    async with serving(config) as server:
        yield f"http://127.0.0.1:{bound_port(server)}"


@pytest.fixture(scope="session")
def tone_provider() -> ToneProvider:
    return ToneProvider()


@pytest.fixture(scope="session")
def piper_provider() -> Provider:
    from stream_server.providers.piper import PiperProvider, default_model_path

    return PiperProvider([default_model_path()], workers=1)


ServerFactory = Callable[..., Awaitable[RunningServer]]


def tone_settings(**overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "port": 0,
        "providers": ("tone",),
        "provider": "tone",
        "log_level": "warning",
        # No pauses between segments, so durations are exactly the tone's (tests of pauses set them).
        "sentence_pause_ms": 0,
        "paragraph_pause_ms": 0,
        "clause_pause_ms": 0,
        # Unpaced: tests read whole streams at once (tests of pacing set a lead).
        "max_lead_ms": 0,
    }
    base.update(overrides)
    return settings_from_raw(base)


@pytest.fixture
async def tone_server(tone_provider: ToneProvider) -> AsyncIterator[RunningServer]:
    async with run_server(tone_settings(), {"tone": tone_provider}) as running:
        yield running
