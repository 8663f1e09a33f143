"""The ASGI application: routes, and a lifespan that loads the providers before serving."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute

from .cluster import RedisLink
from .cluster.share import sharing
from .protocol import Config
from .providers import Provider, build_providers
from .request_id import RequestId
from .security.access import Access
from .security.guard import Guard
from .server_state import ServerState
from .session import resolve_options
from .session.options import check_defaults
from .settings import Settings
from .transports.catalog import api_index, list_formats, list_models, list_voices
from .transports.compat.cartesia.endpoint import tts_socket as cartesia_socket
from .transports.compat.cartesia.rest import tts_bytes as cartesia_bytes
from .transports.compat.cartesia.rest import tts_sse as cartesia_sse
from .transports.compat.deepgram.endpoint import speak_socket
from .transports.compat.deepgram.rest import speak as deepgram_speak
from .transports.compat.elevenlabs.endpoint import multi_stream_input, stream_input
from .transports.compat.elevenlabs.rest import speech_stream as elevenlabs_speech_stream
from .transports.health import healthz, metrics, readyz
from .transports.http_common import error_response
from .transports.openai_speech import speech
from .transports.sse_sessions import SseSessions, create_session, delete_session, session_events, session_text
from .transports.sse_stream import stream
from .transports.tokens import mint_token
from .transports.web import web_routes
from .transports.websocket import stream_endpoint
from .transports.wyoming.listener import wyoming_listener


def check_stream_defaults(settings: Settings, providers: Mapping[str, Provider]) -> None:
    """The server-wide stream defaults (voice included) must work before the first client comes.

    Raises `SettingsError` or `ProtocolError` naming what is wrong.
    """
    check_defaults(settings)
    resolve_options(Config(), settings, providers)


def create_app(
    settings: Settings,
    providers: Mapping[str, Provider] | None = None,
    *,
    owns_providers: bool = False,
    access: Access | None = None,
) -> Starlette:
    """Without `providers`, they are built (and closed) by the app; tests pass loaded ones to share.
    `access`: the server's (its connection table is the one its sockets are counted in)."""

    # The keys file is read now: a bad one stops the server before it listens.
    access = access or Access.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        owned = owns_providers or providers is None
        loaded = dict(providers) if providers is not None else await asyncio.to_thread(build_providers, settings)
        check_stream_defaults(settings, loaded)
        redis = (
            RedisLink(settings.redis_url, max_connections=settings.max_streams + settings.max_connections)
            if settings.redis_url
            else None
        )
        # Limits, tokens and cloud request slots through Redis: installed before the state that
        # uses them, and given back (the local ones) however the lifespan ends.
        with contextlib.ExitStack() as shared:
            keeper = None
            if redis is not None:
                keeper = shared.enter_context(sharing(redis, access, loaded, settings.redis_lease_ttl_s))
            state = ServerState(settings=settings, providers=loaded, access=access, redis=redis)
            app.state.server = state
            try:
                # The SSE sessions' streams outlive the requests that made them, the Wyoming
                # listener serves beside uvicorn's, and the watch over every socket's deadlines
                # runs for as long as the server serves: all of them here.
                async with (
                    SseSessions(state) as sessions,
                    wyoming_listener(state) as wyoming,
                    anyio.create_task_group() as watching,
                ):
                    watching.start_soon(access.connections.watch, name="connection-deadlines")
                    if redis is not None and keeper is not None:
                        watching.start_soon(redis.watch, name="redis-health")
                        watching.start_soon(keeper.run, name="redis-leases")
                    app.state.sse_sessions = sessions
                    app.state.wyoming = wyoming
                    yield
                    watching.cancel_scope.cancel()
            finally:
                if owned:
                    await state.aclose()
                else:
                    await state.shutdown_executor()
                    await state.close_redis()

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            # LiveKit's OpenAI plugin warms its connection with `GET /v1/`.
            Route("/v1/", api_index, methods=["GET"]),
            Route("/v1", api_index, methods=["GET"]),
            Route("/v1/models", list_models, methods=["GET"]),
            Route("/v1/formats", list_formats, methods=["GET"]),
            Route("/v1/voices", list_voices, methods=["GET"]),
            Route("/v1/tokens", mint_token, methods=["POST"]),
            Route("/v1/audio/speech", speech, methods=["POST"]),
            Route("/v1/tts/stream", stream, methods=["POST"]),
            Route("/v1/tts/sessions", create_session, methods=["POST"]),
            Route("/v1/tts/sessions/{session_id}/text", session_text, methods=["POST"]),
            Route("/v1/tts/sessions/{session_id}/events", session_events, methods=["GET"]),
            Route("/v1/tts/sessions/{session_id}", delete_session, methods=["DELETE"]),
            WebSocketRoute("/v1/tts/stream", stream_endpoint),
            # Deepgram's API (Aura TTS): its WebSocket and its REST call share the path.
            Route("/v1/speak", deepgram_speak, methods=["POST"]),
            WebSocketRoute("/v1/speak", speak_socket),
            # Cartesia's API: its WebSocket with contexts and its two HTTP calls.
            WebSocketRoute("/tts/websocket", cartesia_socket),
            Route("/tts/bytes", cartesia_bytes, methods=["POST"]),
            Route("/tts/sse", cartesia_sse, methods=["POST"]),
            # ElevenLabs' API: its two sockets and its streaming REST call.
            WebSocketRoute("/v1/text-to-speech/{voice_id}/stream-input", stream_input),
            WebSocketRoute("/v1/text-to-speech/{voice_id}/multi-stream-input", multi_stream_input),
            Route("/v1/text-to-speech/{voice_id}/stream", elevenlabs_speech_stream, methods=["POST"]),
            *web_routes(settings),
        ],
        lifespan=lifespan,
        exception_handlers={HTTPException: _json_http_error},
        middleware=_middleware(settings, access),
    )


async def _json_http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths and wrong methods answer in the API's one error shape too."""
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail))


def _middleware(settings: Settings, access: Access) -> list[Middleware]:
    # Outermost first: every answer gets its request id; CORS answers preflights and adds its
    # headers to the guard's refusals too.
    request_id = Middleware(RequestId)
    guard = Middleware(
        Guard,
        access=access,
        allowed_origins=settings.allowed_origins,
        # Served openly on purpose (--insecure-no-auth): whatever name it is reached by.
        open_to_any_host=settings.insecure_no_auth,
    )
    if not settings.allowed_origins:
        return [request_id, guard]
    cors = Middleware(
        CORSMiddleware,
        allow_origins=list(settings.allowed_origins),
        allow_methods=["GET", "POST", "DELETE"],
        allow_headers=["Content-Type", "Last-Event-ID", "Authorization", "X-Request-Id"],
        expose_headers=["X-Request-Id"],
    )
    return [request_id, cors, guard]

