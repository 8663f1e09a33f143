"""Idle WebSocket connections (connected, `ready` received, no text): what each one costs the server."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from websockets.asyncio.client import ClientConnection, connect

from .spec import StreamSpec
from .ws_client import stream_url

CONNECTS_AT_ONCE = 50  # opening hundreds at the same instant would measure the accept queue instead


@asynccontextmanager
async def idle_connections(base_ws: str, spec: StreamSpec, count: int, timeout_s: float = 60.0) -> AsyncIterator[int]:
    """Open `count` streams and hold them idle; yields how many got `ready`. All closed on exit."""
    gate = asyncio.Semaphore(CONNECTS_AT_ONCE)
    url = stream_url(base_ws, spec)
    async with AsyncExitStack() as stack:

        async def open_one() -> ClientConnection | None:
            async with gate:
                try:
                    ws = await stack.enter_async_context(connect(url, ping_interval=None, open_timeout=timeout_s))
                    ready = json.loads(await asyncio.wait_for(ws.recv(), timeout_s))
                except (OSError, TimeoutError, ValueError):
                    return None
                return ws if ready.get("type") == "ready" else None

        opened = await asyncio.gather(*(open_one() for _ in range(count)), return_exceptions=True)
        try:
            yield sum(1 for ws in opened if isinstance(ws, ClientConnection))
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(stack.aclose(), timeout_s)
