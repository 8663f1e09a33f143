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
                        "decoding": v.decoding,
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


# (method, path, what, where it is documented): the index `GET /v1/` answers.
ENDPOINTS = (
    ("GET", "/v1/tts/stream", "WebSocket: the streaming protocol", "docs/protocol.md"),
    ("POST", "/v1/tts/stream", "one request, Server-Sent Events back", "docs/api.md#post-v1ttsstream"),
    ("POST", "/v1/tts/sessions", "an SSE session: text by POST, events by GET", "docs/api.md#sse-sessions"),
    ("POST", "/v1/tts/sessions/{id}/text", "text for an SSE session", "docs/api.md#post-v1ttssessionsidtext"),
    ("GET", "/v1/tts/sessions/{id}/events", "an SSE session's events", "docs/api.md#get-v1ttssessionsidevents"),
    ("DELETE", "/v1/tts/sessions/{id}", "barge-in on an SSE session", "docs/api.md#delete-v1ttssessionsid"),
    ("POST", "/v1/audio/speech", "OpenAI-compatible speech", "docs/api.md#post-v1audiospeech"),
    ("GET", "/v1/speak", "WebSocket: Deepgram's streaming TTS protocol", "docs/compat.md"),
    ("POST", "/v1/speak", "Deepgram's TTS REST call", "docs/compat.md"),
    ("GET", "/tts/websocket", "WebSocket: Cartesia's streaming TTS protocol, with contexts", "docs/compat.md"),
    ("POST", "/tts/bytes", "Cartesia's TTS call: audio bytes", "docs/compat.md"),
    ("POST", "/tts/sse", "Cartesia's TTS call: Server-Sent Events", "docs/compat.md"),
    ("GET", "/v1/text-to-speech/{voice_id}/stream-input", "WebSocket: ElevenLabs' input streaming", "docs/compat.md"),
    ("GET", "/v1/text-to-speech/{voice_id}/multi-stream-input", "WebSocket: ElevenLabs' contexts", "docs/compat.md"),
    ("POST", "/v1/text-to-speech/{voice_id}/stream", "ElevenLabs' streaming TTS REST call", "docs/compat.md"),
    ("GET", "/v1/models", "providers and their capabilities", "docs/api.md#get-v1models"),
    ("GET", "/v1/voices", "voices by provider", "docs/api.md#get-v1voices"),
    ("GET", "/v1/formats", "output formats", "docs/api.md#get-v1formats"),
    ("POST", "/v1/tokens", "a single-use token for a browser's WebSocket", "docs/api.md#post-v1tokens"),
    ("GET", "/healthz", "alive, with leak counters", "docs/api.md#get-healthz"),
    ("GET", "/readyz", "ready for traffic", "docs/api.md#get-readyz"),
    ("GET", "/metrics", "Prometheus metrics", "docs/api.md#get-metrics"),
)


async def api_index(request: Request) -> JSONResponse:
    """`GET /v1/`: what the API offers (clients such as LiveKit's probe it to warm a connection)."""
    return JSONResponse(
        {
            "object": "api",
            "endpoints": [
                {"method": method, "path": path, "what": what, "docs": docs}
                for method, path, what, docs in ENDPOINTS
            ],
        }
    )
