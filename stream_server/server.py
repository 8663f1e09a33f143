"""Running the app under uvicorn with the settings' network and protocol limits."""

from __future__ import annotations

from collections.abc import Mapping

import uvicorn

from .app import create_app
from .logs import configure_logging
from .providers import Provider
from .settings import Settings

# Over our own message limit, so that an oversized message reaches the app and gets a proper
# `error` before the 1009 close; past this, the WebSocket layer closes with 1009 on its own.
WS_MAX_SIZE_FACTOR = 4
WS_MAX_SIZE_FLOOR = 1 << 20
# On shutdown, connections get this long to finish; a client that stopped reading cannot hold
# the process forever.
GRACEFUL_SHUTDOWN_S = 5


def uvicorn_config(
    settings: Settings, providers: Mapping[str, Provider] | None = None, *, owns_providers: bool = False
) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(settings, providers, owns_providers=owns_providers),
        host=settings.host,
        port=settings.port,
        log_config=configure_logging(settings.log_level),
        ws_max_size=max(WS_MAX_SIZE_FACTOR * settings.max_message_bytes, WS_MAX_SIZE_FLOOR),
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
