"""What the HTTP endpoints share: JSON errors in one shape, typed request bodies, options."""

from __future__ import annotations

import math
from typing import TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse

from ..protocol import Config, ErrorCode, ProtocolError
from ..protocol.codec import TOO_DEEP
from ..providers.base import unavailable_for_s
from ..server_state import ServerState
from ..session import StreamOptions, resolve_options

T = TypeVar("T")

# Errors that are the client's: which HTTP status each protocol code gets.
_STATUS = {
    ErrorCode.BAD_MESSAGE: 400,
    ErrorCode.MESSAGE_TOO_LARGE: 413,
    ErrorCode.UNKNOWN_PROVIDER: 400,
    ErrorCode.UNKNOWN_VOICE: 400,
    ErrorCode.UNSUPPORTED_FORMAT: 400,
    ErrorCode.UNSUPPORTED_SAMPLE_RATE: 400,
    ErrorCode.BAD_FRAME_MS: 400,
    ErrorCode.PENDING_TEXT_LIMIT: 413,
    ErrorCode.STREAM_ENDED: 409,
    ErrorCode.SERVER_BUSY: 503,
    ErrorCode.SHUTTING_DOWN: 503,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.TOO_MANY_STREAMS: 429,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.FORBIDDEN_ORIGIN: 403,
}


class HttpError(Exception):
    def __init__(self, status: int, code: str, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.retry_after_s = retry_after_s

    def response(self) -> JSONResponse:
        return error_response(self.status, self.code, self.message, retry_after_s=self.retry_after_s)


def error_response(status: int, code: str, message: str, *, retry_after_s: float | None = None) -> JSONResponse:
    # Retry-After is in whole seconds: round up, so a client that waits that long is let in.
    headers = {"Retry-After": str(max(1, math.ceil(retry_after_s)))} if retry_after_s is not None else None
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def http_error(exc: ProtocolError) -> HttpError:
    return HttpError(_STATUS.get(exc.code, 400), exc.code, exc.message, retry_after_s=exc.retry_after_s)


async def read_body(request: Request, kind: type[T], max_bytes: int) -> T:
    """The request's JSON body as `kind`; precise 400s for bad bodies, 413 for oversize ones."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise HttpError(413, ErrorCode.MESSAGE_TOO_LARGE, f"body over {max_bytes} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise HttpError(413, ErrorCode.MESSAGE_TOO_LARGE, f"body over {max_bytes} bytes")
    try:
        return msgspec.json.decode(bytes(body), type=kind)
    except msgspec.DecodeError as exc:
        raise HttpError(400, ErrorCode.BAD_MESSAGE, str(exc)) from None
    except RecursionError:
        raise HttpError(400, ErrorCode.BAD_MESSAGE, TOO_DEEP) from None


def options_for(state: ServerState, config: Config) -> StreamOptions:
    try:
        return resolve_options(config, state.settings, state.providers)
    except ProtocolError as exc:
        raise http_error(exc) from None


def refuse_query(request: Request, *, where: str) -> None:
    """A request whose options travel in its JSON body takes none in its URL: a query parameter
    would otherwise be silently ignored (`?response_format=opus` answered in mp3)."""
    if names := sorted(set(request.query_params)):
        listed = ", ".join(repr(name) for name in names)
        plural = "s" if len(names) > 1 else ""
        raise HttpError(
            400, ErrorCode.BAD_MESSAGE, f"unexpected query parameter{plural} {listed}: the options go in {where}"
        )


def require_a_provider(state: ServerState, options: StreamOptions) -> None:
    """Refuses (503 provider_unavailable, with Retry-After) a stream no provider of its chain can
    speak now, every one of them failing fast behind an open circuit breaker: before the status
    line, rather than a 200 with no audio."""
    chain = [state.providers[options.provider], *(provider for provider, _ in state.factory.fallbacks(options))]
    waits = [unavailable_for_s(provider) for provider in chain]
    if all(wait is not None for wait in waits):
        names = ", ".join(provider.name for provider in chain)
        raise HttpError(
            503,
            ErrorCode.PROVIDER_UNAVAILABLE,
            f"{names}: unavailable after repeated failures (circuit breaker open); retry later",
            retry_after_s=min(w for w in waits if w is not None),
        )
