"""`x-request-id` on every HTTP response and WebSocket handshake answer.

Clients quote it when they report a problem, and some expect it (LiveKit's OpenAI plugin warns on
every request without one); the log carries it next to the stream id, so the two can be matched.
A client's own id is echoed when it is sane (short, printable, no separators a log or a header
could trip over), so a caller's tracing id follows the request; otherwise the server makes one
that cannot be guessed.
"""

from __future__ import annotations

import re
import secrets

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "x-request-id"
_SANE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_SCOPE_KEY = "stream_server.request_id"
# The ASGI messages that start an answer: an HTTP response, a WebSocket accept, a refused handshake.
_STARTS = frozenset({"http.response.start", "websocket.accept", "websocket.http.response.start"})


def request_id_of(connection: HTTPConnection) -> str | None:
    """The id `RequestId` gave this request (None outside the middleware, as in unit tests)."""
    return connection.scope.get(_SCOPE_KEY)


def new_request_id() -> str:
    return "req_" + secrets.token_hex(16)


class RequestId:
    """Pure ASGI middleware: outermost, so the guard's refusals and 404s carry the id too."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self._app(scope, receive, send)
            return
        given = Headers(scope=scope).get(HEADER)
        request_id = given if given is not None and _SANE.fullmatch(given) else new_request_id()
        scope[_SCOPE_KEY] = request_id
        header = (HEADER.encode(), request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] in _STARTS:
                headers = [h for h in message.get("headers", ()) if h[0].lower() != header[0]]
                message = {**message, "headers": [*headers, header]}
            await send(message)

        await self._app(scope, receive, send_with_id)
