"""Operations: `GET /healthz` (alive, with the counters that show leaks), `GET /readyz`,
`GET /metrics` (Prometheus text format)."""

from __future__ import annotations

import asyncio
import threading

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..server_state import ServerState


async def healthz(request: Request) -> JSONResponse:
    state: ServerState = request.app.state.server
    return JSONResponse(
        {
            "status": "ok",
            "streams": len(state.streams),
            # For leak checks (loadtest/soak.py): both return to their baseline once streams end.
            # `tasks` includes the task answering this request.
            "tasks": len(asyncio.all_tasks()),
            "threads": _native_threads(),
            "providers": {
                name: {"voices": [v.id for v in provider.voices], **provider.stats()}
                for name, provider in state.providers.items()
            },
        }
    )


async def readyz(request: Request) -> JSONResponse:
    """Ready: not draining, and at least one provider serves (loaded, with voices, breaker closed).

    A cloud provider whose circuit breaker is open is listed in `degraded`, not a reason to take
    the whole server out of a load balancer: other providers (and fallback chains) still serve.
    So is "redis" while `--redis-url`'s Redis does not answer: streams keep to local limits.
    """
    state: ServerState = request.app.state.server
    providers = {
        name: {"voices": len(provider.voices), "breaker_open": bool(provider.stats().get("breaker_open"))}
        for name, provider in state.providers.items()
    }
    degraded = [name for name, p in providers.items() if p["breaker_open"] or not p["voices"]]
    ready = not state.draining and len(degraded) < len(providers)
    if state.redis is not None and not state.redis.available:
        # Streams go on, on this process's own limits (cluster/limits.py): degraded, still ready.
        degraded.append("redis")
    body = {"ready": ready, "draining": state.draining, "degraded": degraded, "providers": providers}
    return JSONResponse(body, status_code=200 if ready else 503)


async def metrics(request: Request) -> Response:
    state: ServerState = request.app.state.server
    render = state.metrics.render
    # With workers, rendering reads a file per worker and metric: off the event loop.
    body = await asyncio.to_thread(render) if state.metrics.reads_files else render()
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _native_threads() -> int:
    """Every thread of the process, FFmpeg's and ONNX Runtime's included (Linux), not only Python's."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return threading.active_count()
