"""What the HTTP endpoints share: JSON errors, typed request bodies, and running a stream whose
whole output an HTTP response carries."""

from __future__ import annotations

import asyncio
import codecs
import logging
import math
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar, cast

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from ..audio import EncodedFrame
from ..buffer import Outbox
from ..logs import log_event
from ..protocol import Config, Error, ErrorCode, ProtocolError, ServerMessage
from ..protocol.codec import TOO_DEEP
from ..security import Client
from ..server_state import ServerState, Stop
from ..session import STREAM_DONE, OutItem, StreamOptions, StreamSession, resolve_options

T = TypeVar("T")
logger = logging.getLogger(__name__)

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


async def open_stream(
    state: ServerState,
    options: StreamOptions,
    transport: str,
    client: Client,
    *,
    text: str | None = None,
    stop: Stop | None = None,
) -> tuple[StreamSession, Outbox[OutItem]]:
    """A stream not tied to a connection; the caller drains the outbox and closes the session.

    `text`: the whole input, pushed and ended here, so that a refusal (a rate limit) is an HTTP
    error before the response starts. Without `stop`, a stream the server ends early reports the
    error in its output, which then ends with `done`.
    """

    async def stop_in_band(reason: ProtocolError) -> None:
        outbox.send_control(Error(code=reason.code, message=reason.message))
        await session.cancel()
        if not session.ended:
            session.end()
        session.abandon_later()

    try:
        session = state.open_stream(
            options, transport, uuid.uuid4().hex[:12], client=client, stop=stop or stop_in_band
        )
    except ProtocolError as exc:
        raise http_error(exc) from None
    outbox: Outbox[OutItem] = Outbox()
    outbox.attach(session.ring)
    if text is not None:
        try:
            session.push_text(text)
        except ProtocolError as exc:
            # Nothing was sent yet: release the stream and refuse the request.
            await state.close_stream(session)
            raise http_error(exc) from None
        session.end()
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


class StreamBody:
    """A streamed response that always closes its stream, and may still read its request body.

    Starlette's StreamingResponse reads the request's messages itself to notice a disconnect
    (which would swallow a body still arriving), and cancels the body generator in a way that can
    skip its clean-up. Here one task owns the receiving side: it pushes the body's text when the
    text is the body (`fed`), then watches for the disconnect, which stops the sending side; and
    `closed` runs in any case.
    """

    def __init__(
        self,
        body: AsyncIterator[bytes],
        media_type: str,
        closed: Callable[[], Awaitable[None]],
        *,
        stream: StreamSession | None = None,
        fed: StreamSession | None = None,
        refused: Callable[[ProtocolError], None] | None = None,
    ) -> None:
        self._body = body
        self._media_type = media_type
        self._closed = closed
        self._stream = stream or fed
        self._fed = fed
        self._refused = refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            headers = [(b"content-type", self._media_type.encode()), (b"cache-control", b"no-cache")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            sender = asyncio.create_task(self._send(send))
            if self._stream is not None:

                def cut() -> None:  # the server stopped the stream and the client does not read
                    sender.cancel()

                self._stream.abandon = cut
            listener = asyncio.create_task(self._listen(receive, sender))
            try:
                await sender
            except asyncio.CancelledError:
                if not sender.cancelled():
                    raise  # we were cancelled ourselves, not by a disconnect
            except OSError:
                pass  # the client went away mid-write
            finally:
                listener.cancel()
                await asyncio.gather(listener, return_exceptions=True)
        finally:
            await self._closed()

    async def _send(self, send: Send) -> None:
        async for chunk in self._body:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _listen(self, receive: Receive, sender: asyncio.Task[None]) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        session = self._fed
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                sender.cancel()  # the client went away: stop the stream now
                return
            if session is None or session.ended:
                continue
            last = not message.get("more_body", False)
            try:
                # UTF-8 split across two chunks is put back together by the incremental decoder.
                if text := decoder.decode(message.get("body", b""), final=last):
                    session.push_text(text)
            except ProtocolError as exc:
                log_event(logger, "stream.body_refused", level=logging.WARNING, stream=session.stream_id, code=exc.code)
                if self._refused is not None:
                    self._refused(exc)
                last = True
            if last:
                session.end()
