"""`POST /v1/tts/stream`: one request, one stream, answered with Server-Sent Events.

The text comes in the JSON body (`{"text": ..., config fields...}`), or as the body itself
(`text/plain`, possibly chunked and arriving over time, as an LLM produces it) with the config in
the query string. The events are those of an SSE session (see sse_sessions.py), without resume.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..logs import log_event
from ..buffer import Pacer
from ..protocol import Config, Error, ErrorCode, ProtocolError
from ..protocol.sse import SseEncoder
from ..server_state import ServerState
from ..session import StreamSession, config_from_query, ready_message
from .http_common import HttpError, close_stream, drain, error_response, http_error, open_stream, options_for, read_body

logger = logging.getLogger(__name__)
T = TypeVar("T")


class StreamText(msgspec.Struct):
    text: str


async def stream(request: Request) -> Response | DuplexEventStream:
    state: ServerState = request.app.state.server
    plain = request.headers.get("content-type", "").startswith("text/plain")
    try:
        if plain:
            config, text = config_from_query(request.query_params), None
        else:
            # The body is a `config` plus "text": each part is checked by its own type.
            fields = await read_body(request, dict[str, object], state.settings.max_message_bytes)
            text = _convert({"text": fields.pop("text", None)}, StreamText).text
            config = _convert({**fields, "type": "config"}, Config)
        # An HTTP client takes the events as fast as they come, unless it asks for pacing.
        options = options_for(state, msgspec.structs.replace(config, max_lead_ms=config.max_lead_ms or 0))
    except ProtocolError as exc:
        error = http_error(exc)
        return error_response(error.status, error.code, error.message)
    except HttpError as exc:
        return error_response(exc.status, exc.code, exc.message)
    session, outbox = open_stream(state, options, "sse_stream")
    if text is not None:
        session.push_text(text)
        session.end()

    async def events() -> AsyncIterator[bytes]:
        encoder, pacer = SseEncoder(), Pacer(options.max_lead_ms)
        yield encoder.event(ready_message(options)).encode()
        async for item in drain(session, outbox):
            event = encoder.event(item)
            if event.audio_ms:
                if delay := pacer.delay():
                    await asyncio.sleep(delay)  # pacing to real time, when the client asked for it
                pacer.sent(event.audio_ms)
            yield event.encode()

    def refused(exc: ProtocolError) -> None:
        # The body went past a limit: the client hears it in the stream, which ends there.
        outbox.send_control(Error(code=exc.code, message=exc.message))

    async def closed() -> None:
        await close_stream(state, session)

    return DuplexEventStream(events(), session if text is None else None, closed, refused)


class DuplexEventStream:
    """An event stream that may still be reading its request body while it answers.

    Starlette's StreamingResponse reads the request's messages itself to notice a disconnect,
    which would swallow a body that arrives while the events stream out. Here one task owns the
    receiving side: it pushes the body's text (when the text is the body) and then watches for
    the disconnect, which stops the sending side.
    """

    def __init__(
        self,
        events: AsyncIterator[bytes],
        fed: StreamSession | None,
        closed: Callable[[], Awaitable[None]],
        refused: Callable[[ProtocolError], None],
    ) -> None:
        self._events = events
        self._fed = fed
        self._closed = closed
        self._refused = refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        sender = asyncio.create_task(self._send(send))
        listener = asyncio.create_task(self._listen(receive, sender))
        try:
            await sender
        except asyncio.CancelledError:
            if not sender.cancelled():
                raise  # we were cancelled ourselves, not by a disconnect
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
            await self._closed()

    async def _send(self, send: Send) -> None:
        async for event in self._events:
            await send({"type": "http.response.body", "body": event, "more_body": True})
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
                self._refused(exc)
                last = True
            if last:
                session.end()


def _convert(fields: dict[str, object], kind: type[T]) -> T:
    try:
        return msgspec.convert(fields, kind)
    except msgspec.ValidationError as exc:
        raise HttpError(400, ErrorCode.BAD_MESSAGE, str(exc)) from None
