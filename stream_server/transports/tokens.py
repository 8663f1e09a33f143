"""`POST /v1/tokens`: a short-lived, single-use token for a browser's WebSocket (`?token=`).

The caller authenticates with its API key (the guard checked it); the token is scoped to that
key, so a stream opened with it counts against the key's limits. A server without keys needs no
token: it answers with the token "none", which its WebSocket ignores like any other.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..protocol import ProtocolError
from ..security.guard import client_of
from ..server_state import ServerState
from .http_common import http_error

OPEN_SERVER_TOKEN = "none"


async def mint_token(request: Request) -> Response:
    state: ServerState = request.app.state.server
    access = state.access
    assert access is not None
    client = client_of(request)
    if client.key is None:
        return JSONResponse({"token": OPEN_SERVER_TOKEN, "expires_in_s": access.tokens.ttl_s}, status_code=201)
    try:
        token = await access.tokens.mint(client.key)
    except ProtocolError as exc:
        return http_error(exc).response()
    return JSONResponse(
        {"token": token, "expires_in_s": access.tokens.ttl_s},
        status_code=201,
        headers={"Cache-Control": "no-store"},
    )
