"""`POST /v1/tts/stream`: one request, one stream, answered with Server-Sent Events.

The text comes in the JSON body (`{"text": ..., config fields...}`), or as the body itself
(`text/plain`, possibly chunked and arriving over time, as an LLM produces it) with the config in
the query string. The events are those of an SSE session (see sse_sessions.py), without resume.
"""

from __future__ import annotations

import logging
from typing import TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from ..logs import log_event
from ..protocol import Config, ErrorCode, ProtocolError
from ..protocol.sse import SseEncoder
from ..request_id import request_id_of
from ..security.guard import client_of
from ..server_state import ServerState
from ..session import Output, Stopped, config_from_query
from .http_common import HttpError, http_error, options_for, read_body, refuse_query
from .http_stream import StreamedResponse, open_stream, stream_response

T = TypeVar("T")
logger = logging.getLogger(__name__)


class StreamText(msgspec.Struct):
    text: str


async def stream(request: Request) -> Response | StreamedResponse:
    state: ServerState = request.app.state.server
    plain = request.headers.get("content-type", "").startswith("text/plain")
    try:
        if plain:
            config, text = config_from_query(request.query_params), None
        else:
            refuse_query(request, where="the JSON body (or send the text as text/plain)")
            # The body is a `config` plus "text": each part is checked by its own type.
            fields = await read_body(request, dict[str, object], state.settings.max_message_bytes)
            text = _convert({"text": fields.pop("text", None)}, StreamText).text
            config = _convert({**fields, "type": "config"}, Config)
        # An HTTP client takes the events as fast as they come, unless it asks for pacing.
        options = options_for(state, msgspec.structs.replace(config, max_lead_ms=config.max_lead_ms or 0))
        session = await open_stream(state, options, "sse_stream", client_of(request), text=text)
    except ProtocolError as exc:
        return http_error(exc).response()
    except HttpError as exc:
        return exc.response()
    log_event(
        logger, "sse_stream.open", stream=session.id, request=request_id_of(request), provider=options.provider,
        format=options.format.name,
    )
    encoder = SseEncoder()

    def render(output: Output) -> bytes | None:
        return None if type(output) is Stopped else encoder.event(output).encode()

    return stream_response(state, session, "text/event-stream; charset=utf-8", render, text_body=plain)


def _convert(fields: dict[str, object], kind: type[T]) -> T:
    try:
        return msgspec.convert(fields, kind)
    except msgspec.ValidationError as exc:
        raise HttpError(400, ErrorCode.BAD_MESSAGE, str(exc)) from None
