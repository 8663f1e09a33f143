"""The edge guard: every HTTP request and WebSocket handshake passes here before any route.

In order: the browser's `Origin` must be the server's own or an allowed one (a page on another
site must not drive a server on the visitor's machine or network); the global connection cap; then
the caller is identified, by `Authorization: Bearer KEY`, or on a WebSocket by a browser token in
`?token=`. Refusals use the API's error shape; a refused WebSocket handshake gets the same JSON as
an HTTP response (401/403), or a 1013 close with an `error` message when the server is full.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from ..protocol import Error, ErrorCode, ProtocolError, encode_server_message
from ..settings import is_loopback
from .access import Access
from .keys import ANONYMOUS, Client

# Open to anyone: the demo page, operations, and the catalog (what the server offers, free to ask).
PUBLIC_PATHS = frozenset(
    {"/", "/healthz", "/readyz", "/metrics", "/v1", "/v1/", "/v1/voices", "/v1/formats", "/v1/models"}
)
PUBLIC_PREFIXES = ("/static/",)
# Deepgram's API sends `Authorization: Token KEY`: taken there as a Bearer key.
TOKEN_SCHEME_PATHS = frozenset({"/v1/speak"})
# Cartesia's API sends the key as `X-API-Key: KEY`: taken there as a Bearer key.
API_KEY_HEADER_PATHS = frozenset({"/tts/websocket", "/tts/bytes", "/tts/sse"})
# ElevenLabs' API sends `xi-api-key: KEY`; its sockets may bring the key in their first message
# instead: the handshake passes, marked, and the endpoint opens nothing until that key checks out.
ELEVENLABS_PREFIX = "/v1/text-to-speech/"
ELEVENLABS_SOCKETS = ("/stream-input", "/multi-stream-input")
# Served on a full server (every socket counts, theirs too, but these answer anyway): probes must
# get through. The connection layer keeps a few sockets' headroom past --max-connections for them.
UNCOUNTED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

CLOSE_TRY_AGAIN = 1013
_CLIENT = "stream_server.client"
_CREDENTIAL_PENDING = "stream_server.credential_pending"

_STATUS = {ErrorCode.UNAUTHORIZED: 401, ErrorCode.FORBIDDEN_ORIGIN: 403, ErrorCode.SERVER_BUSY: 503}


def client_of(connection: HTTPConnection) -> Client:
    """Who made this request (set by the guard; anonymous where no keys are configured)."""
    return connection.scope.get(_CLIENT, ANONYMOUS)


def credential_pending(connection: HTTPConnection) -> bool:
    """An ElevenLabs socket that came without a key while keys are required: its first message
    must bring one (`Keys.lookup` it) before anything is opened."""
    return bool(connection.scope.get(_CREDENTIAL_PENDING))


def is_sse_events(path: str) -> bool:
    """An SSE session's event stream: the unguessable session id is its credential, because
    `EventSource` cannot send headers; the session was made with a key."""
    return path.startswith("/v1/tts/sessions/") and path.endswith("/events")


class Guard:
    def __init__(
        self, app: ASGIApp, access: Access, allowed_origins: tuple[str, ...], open_to_any_host: bool = False
    ) -> None:
        self._app = app
        self._access = access
        self._any_origin = "*" in allowed_origins
        self._origins = frozenset(o.rstrip("/").lower() for o in allowed_origins)
        self._open_to_any_host = open_to_any_host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self._app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        path: str = scope["path"]
        try:
            if not (self._access.keys.enabled or self._open_to_any_host or _is_loopback_host(headers.get("host"))):
                # DNS rebinding: a site whose name now points at 127.0.0.1 passes as "same origin";
                # a server without keys answers only to its loopback names.
                raise ProtocolError(ErrorCode.FORBIDDEN_ORIGIN, "this server answers only to loopback host names")
            origin = headers.get("origin")
            if origin is not None and not self._origin_allowed(origin, headers.get("host")):
                raise ProtocolError(ErrorCode.FORBIDDEN_ORIGIN, f"origin {origin!r} is not allowed")
            if path in UNCOUNTED_PATHS:
                await self._app(scope, receive, send)
                return
            if self._access.connections.over_capacity:
                raise ProtocolError(ErrorCode.SERVER_BUSY, "the server has all the connections it takes; retry later")
            scope[_CLIENT] = await self._identify(scope, headers, path)
        except ProtocolError as exc:
            await _refuse(scope, receive, send, exc)
            return
        await self._app(scope, receive, send)

    def _origin_allowed(self, origin: str, host: str | None) -> bool:
        origin = origin.rstrip("/").lower()
        same_site = host is not None and urlsplit(origin).netloc == host.lower()
        return same_site or self._any_origin or origin in self._origins

    async def _identify(self, scope: Scope, headers: Headers, path: str) -> Client:
        keys = self._access.keys
        if not keys.enabled:
            return ANONYMOUS
        scheme, _, credential = headers.get("authorization", "").partition(" ")
        if not credential and path in API_KEY_HEADER_PATHS and headers.get("x-api-key"):
            scheme, credential = "bearer", headers["x-api-key"]
        if credential and (scheme.lower() == "bearer" or (scheme.lower() == "token" and path in TOKEN_SCHEME_PATHS)):
            client = keys.lookup(credential.strip())
            if client is None:
                raise ProtocolError(ErrorCode.UNAUTHORIZED, "unknown API key")
            return client
        if path.startswith(ELEVENLABS_PREFIX) and (key := headers.get("xi-api-key")):
            client = keys.lookup(key.strip())
            if client is None:
                raise ProtocolError(ErrorCode.UNAUTHORIZED, "unknown API key")
            return client
        if scope["type"] == "websocket":
            # The literal name only, one spelling to document (the log masks every spelling).
            raw = scope.get("query_string", b"").decode("latin-1")
            token = next((value for name, _, value in (p.partition("=") for p in raw.split("&")) if name == "token"), None)
            token = unquote(token) if token else None
            if token:
                client = keys.get(await self._access.tokens.redeem(token))
                if client is None:  # its key was removed since
                    raise ProtocolError(ErrorCode.UNAUTHORIZED, "the token's key is no longer valid")
                return client
        if scope["type"] == "websocket" and path.startswith(ELEVENLABS_PREFIX) and path.endswith(ELEVENLABS_SOCKETS):
            scope[_CREDENTIAL_PENDING] = True
            return ANONYMOUS
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES) or is_sse_events(path):
            return ANONYMOUS
        raise ProtocolError(ErrorCode.UNAUTHORIZED, _missing_credential(scope, scheme))


def _missing_credential(scope: Scope, scheme: str) -> str:
    """What to send instead, for a request that brought no usable credential."""
    if scheme and scheme.lower() != "bearer":
        return f"the Authorization scheme {scheme[:20]!r} is not taken: send 'Authorization: Bearer <API key>'"
    if scope["type"] == "websocket":
        return "no credential: send 'Authorization: Bearer <API key>' (browsers: a token from POST /v1/tokens as ?token=)"
    if b"token=" in scope.get("query_string", b""):
        return "no API key: a ?token= opens a WebSocket only; HTTP requests send 'Authorization: Bearer <API key>'"
    return "no API key: send 'Authorization: Bearer <API key>'"


def _is_loopback_host(host: str | None) -> bool:
    if not host:
        return True  # HTTP/1.0 without Host: not a browser
    name = urlsplit(f"//{host}").hostname or ""
    return is_loopback(name)


async def _refuse(scope: Scope, receive: Receive, send: Send, exc: ProtocolError) -> None:
    status = _STATUS.get(exc.code, 400)
    if scope["type"] == "websocket":
        if exc.code == ErrorCode.SERVER_BUSY:
            # The client learns why in the protocol's own terms, and a 1013 says: retry later.
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.send", "text": encode_server_message(Error(code=exc.code, message=exc.message))})
            await send({"type": "websocket.close", "code": CLOSE_TRY_AGAIN, "reason": exc.code})
            return
        if "websocket.http.response" not in scope.get("extensions", {}):
            await send({"type": "websocket.close", "code": 1008})  # the server answers the handshake 403
            return
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    await JSONResponse({"error": {"code": exc.code, "message": exc.message}}, status, headers)(scope, receive, send)
