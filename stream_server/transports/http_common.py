"""What the HTTP endpoints share: JSON errors, typed request bodies, and running a stream whose
whole output an HTTP response carries."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import TypeVar, cast

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse

from ..audio import EncodedFrame
from ..buffer import Outbox
from ..protocol import Config, ErrorCode, ProtocolError, ServerMessage
from ..server_state import ServerState
from ..session import STREAM_DONE, OutItem, StreamOptions, StreamSession, resolve_options

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
}


class HttpError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def http_error(exc: ProtocolError) -> HttpError:
    return HttpError(_STATUS.get(exc.code, 400), exc.code, exc.message)


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


def options_for(state: ServerState, config: Config) -> StreamOptions:
    try:
        return resolve_options(config, state.settings, state.providers)
    except ProtocolError as exc:
        raise http_error(exc) from None


def open_stream(state: ServerState, options: StreamOptions, transport: str) -> tuple[StreamSession, Outbox[OutItem]]:
    """A stream not tied to a connection; the caller drains the outbox and closes the session."""
    session = state.open_stream(options, transport, uuid.uuid4().hex[:12])
    outbox: Outbox[OutItem] = Outbox()
    outbox.attach(session.ring)
    return session, outbox


async def drain(session: StreamSession, outbox: Outbox[OutItem]) -> AsyncIterator[EncodedFrame | ServerMessage]:
    """Everything the stream sends, in order, ending with its `Done` (counted as it is taken)."""
    while True:
        item = await outbox.get()
        if item is STREAM_DONE:
            yield session.stats.done_message()
            return
        yield cast(EncodedFrame | ServerMessage, item)
        session.note_sent(item)


async def close_stream(state: ServerState, session: StreamSession) -> None:
    await state.close_stream(session)
