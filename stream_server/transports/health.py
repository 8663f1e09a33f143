"""`GET /healthz`: liveness plus the counters an operator (or a test) needs to see leaks."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from ..server_state import ServerState


async def healthz(request: Request) -> JSONResponse:
    state: ServerState = request.app.state.server
    return JSONResponse(
        {
            "status": "ok",
            "streams": len(state.streams),
            "providers": {
                name: {"voices": [v.id for v in provider.voices], **provider.stats()}
                for name, provider in state.providers.items()
            },
        }
    )
