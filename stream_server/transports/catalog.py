"""`GET /v1/formats`, `GET /v1/voices`, `GET /v1/models`: what a client may ask a stream for."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from ..audio.formats import FORMATS, MAX_FRAME_MS, MIN_FRAME_MS
from ..providers.registry import CAPABILITIES
from ..server_state import ServerState


async def list_formats(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "formats": [
                {
                    "name": fmt.name,
                    "mime": fmt.mime,
                    "codec": fmt.codec,
                    "container": fmt.container,
                    "sample_rates": list(fmt.sample_rates),
                    # null: any whole number of ms from min to max; []: the codec's own frame size.
                    "frame_ms": None if fmt.frame_ms_choices is None else list(fmt.frame_ms_choices),
                    "frame_ms_range": [MIN_FRAME_MS, MAX_FRAME_MS] if fmt.frame_ms_choices is None else None,
                }
                for fmt in FORMATS.values()
            ]
        }
    )


async def list_voices(request: Request) -> JSONResponse:
    state: ServerState = request.app.state.server
    return JSONResponse(
        {
            "default_provider": state.settings.provider,
            "providers": {
                name: [
                    {
                        "id": v.id,
                        "name": v.name or v.id,
                        "language": v.language,
                        "gender": v.gender,
                        "sample_rate": v.sample_rate,
                    }
                    for v in provider.voices
                ]
                for name, provider in state.providers.items()
            },
        }
    )


async def list_models(request: Request) -> JSONResponse:
    """The providers as "models": what each can do and its limits (never its URL or key)."""
    state: ServerState = request.app.state.server
    return JSONResponse(
        {
            "object": "list",
            "data": [
                {
                    "id": name,
                    "object": "model",
                    "default": name == state.settings.provider,
                    "capabilities": CAPABILITIES.get(name, {}),
                    "formats": list(FORMATS),
                    "languages": sorted({v.language for v in provider.voices}),
                    "voices": len(provider.voices),
                    "max_chars": provider.max_chars,
                    "max_bytes": provider.max_bytes,
                }
                for name, provider in state.providers.items()
            ],
        }
    )
