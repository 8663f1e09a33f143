"""`POST /v1/tts/stream`: one request, one stream, answered with Server-Sent Events.

The text comes in the JSON body (`{"text": ..., config fields...}`), or as the body itself
(`text/plain`, possibly chunked and arriving over time, as an LLM produces it) with the config in
the query string. The events are those of an SSE session (see sse_sessions.py), without resume.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from ..buffer import Pacer
from ..protocol import Config, Error, ErrorCode, ProtocolError
from ..protocol.sse import SseEncoder
from ..security.guard import client_of
from ..server_state import ServerState
from ..session import config_from_query, ready_message
from .http_common import (
    HttpError,
    StreamBody,
    close_stream,
    drain,
    http_error,
    open_stream,
    options_for,
    read_body,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")


class StreamText(msgspec.Struct):
    text: str


async def stream(request: Request) -> Response | StreamBody:
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
        session, outbox = await open_stream(state, options, "sse_stream", client_of(request), text=text)
    except ProtocolError as exc:
        return http_error(exc).response()
    except HttpError as exc:
        return exc.response()

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

    return StreamBody(events(), "text/event-stream; charset=utf-8", closed, stream=session, fed=session if text is None else None, refused=refused)


def _convert(fields: dict[str, object], kind: type[T]) -> T:
    try:
        return msgspec.convert(fields, kind)
    except msgspec.ValidationError as exc:
        raise HttpError(400, ErrorCode.BAD_MESSAGE, str(exc)) from None
