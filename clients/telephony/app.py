"""The bridge's HTTP/WebSocket app: Twilio's media stream in, the bot's text API beside it.

- `WS /twilio`: where TwiML's `<Connect><Stream url="wss://…/twilio">` points. One socket per call.
- `POST /calls/{sid}/text` `{"text": "...", "flush": false}`: text for the call, in any chunking.
- `POST /calls/{sid}/end`: no more text for this call.
- `POST /calls/{sid}/barge-in`: the caller spoke: `clear` Twilio, `cancel` the server, say what was heard.
- `GET /calls/{sid}`: the call's state and which segments were heard.
- `GET /healthz`: `{"status": "ok", "calls": N, "refused_handshakes": M}` (`/twilio` upgrades refused
  for lack of a valid `X-Twilio-Signature`).

With `twilio_auth_token` set, `/twilio` checks Twilio's signature before accepting the socket and
answers anything else with HTTP 403 (`twilio_auth.py`): no call, no server stream, no TTS spent.

`{sid}` is the call's `callSid` or its stream's `streamSid`. Errors are JSON
`{"error": {"code", "message"}}` with the matching status, like the speech server's.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from .call import Call, CallConflict
from .options import BridgeOptions
from .registry import CallRegistry
from .twilio_auth import TWILIO_PATH, public_url_problem, signature_refusal
from .twilio_protocol import InboundMessage, Start, StartInfo, Stop, decode_inbound
from .upstream import open_upstream

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
# WebSocket close codes sent to Twilio (it only logs them; they help whoever reads those logs).
CLOSE_POLICY = 1008
CLOSE_SERVER_ERROR = 1011
CLOSE_TRY_AGAIN = 1013
MAX_CLOSE_REASON = 120

_encoder = msgspec.json.Encoder()


class SayRequest(msgspec.Struct, forbid_unknown_fields=True):
    text: str
    flush: bool = False


def json_response(body: object, status: int = 200) -> Response:
    return Response(_encoder.encode(body), status_code=status, media_type="application/json")


def error_response(status: int, code: str, message: str) -> Response:
    return json_response({"error": {"code": code, "message": message}}, status)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


Handler = Callable[[Request, Call], Awaitable[Response]]


@dataclass
class HandshakeCounters:
    refused: int = 0
    """`/twilio` upgrades refused for a missing or wrong `X-Twilio-Signature`."""


def create_bridge_app(options: BridgeOptions) -> Starlette:
    if options.public_url is not None and (problem := public_url_problem(options.public_url)):
        raise ValueError(f"public_url: {problem}")
    registry = CallRegistry(options.max_calls)
    handshakes = HandshakeCounters()
    if options.twilio_auth_token is None:
        log.warning(
            "%s is open: no Twilio auth token is set, so anyone who finds the URL can open a call and "
            "spend speech (set --twilio-auth-token or $TWILIO_AUTH_TOKEN)",
            TWILIO_PATH,
        )

    def authorize(request: Request) -> None:
        if options.bot_token is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {options.bot_token}".encode()):
            raise ApiError(401, "unauthorized", "missing or wrong bot token (Authorization: Bearer ...)")

    def call_route(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                authorize(request)
                sid = request.path_params["sid"]
                call = registry.find(sid)
                if call is None:
                    raise ApiError(404, "unknown_call", f"no media stream is connected for call or stream {sid!r}")
                return await handler(request, call)
            except ApiError as exc:
                headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
                response = error_response(exc.status, exc.code, exc.message)
                response.headers.update(headers or {})
                return response
            except CallConflict as exc:
                return error_response(409, exc.code, str(exc))

        return endpoint

    async def get_call(request: Request, call: Call) -> Response:
        return json_response(call.state())

    async def post_text(request: Request, call: Call) -> Response:
        body = await read_body(request)
        try:
            say = msgspec.json.decode(body, type=SayRequest)
        except msgspec.DecodeError as exc:
            raise ApiError(400, "bad_request", str(exc)) from None
        await call.say(say.text, say.flush)
        return json_response({"call_sid": call.call_sid, "accepted_chars": len(say.text)}, 202)

    async def post_end(request: Request, call: Call) -> Response:
        await call.end_input()
        return json_response({"call_sid": call.call_sid, "input_ended": True}, 202)

    async def post_barge_in(request: Request, call: Call) -> Response:
        return json_response(await call.barge_in())

    async def healthz(request: Request) -> Response:
        return json_response({"status": "ok", "calls": len(registry), "refused_handshakes": handshakes.refused})

    async def twilio(websocket: WebSocket) -> None:
        if options.twilio_auth_token is not None:
            refusal = signature_refusal(websocket, options.twilio_auth_token, options.public_url)
            if refusal is not None:
                handshakes.refused += 1
                client = f"{websocket.client.host}:{websocket.client.port}" if websocket.client else "?"
                log.warning("refused a %s handshake from %s: %s", TWILIO_PATH, client, refusal)
                await deny_handshake(
                    websocket, "forbidden", "this handshake is not signed by Twilio (X-Twilio-Signature)"
                )
                return
        await websocket.accept()
        start = await receive_start(websocket, options.start_timeout_s)
        if start is None:
            return
        refusal, close_code = start.media_format.problem(), CLOSE_POLICY
        if refusal is None and registry.has_stream(start.stream_sid):
            refusal = f"stream {start.stream_sid} is already connected"
        if refusal is None and registry.full():
            refusal, close_code = f"too many calls (--max-calls {registry.max_calls})", CLOSE_TRY_AGAIN
        if refusal is not None:
            log.error("refusing stream %s of call %s: %s", start.stream_sid, start.call_sid, refusal)
            await websocket.close(close_code, refusal[:MAX_CLOSE_REASON])
            return
        try:
            upstream = await open_upstream(options.server_url, options.api_key)
        except Exception as exc:  # noqa: BLE001 - whatever went wrong, this call gets no speech
            log.error("call %s: cannot open a stream on the speech server: %s", start.call_sid, exc)
            await websocket.close(CLOSE_SERVER_ERROR, "speech server unavailable")
            return
        call = Call(start, websocket, upstream, options)
        registry.add(call)
        log.info("call %s: stream %s connected (%d call(s))", call.call_sid, call.stream_sid, len(registry))
        try:
            await call.run(inbound_messages(websocket))
        finally:
            registry.remove(call)
            log.info("call %s: stream %s freed (%d call(s))", call.call_sid, call.stream_sid, len(registry))
            await close_quietly(websocket)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail))

    app = Starlette(
        routes=[
            WebSocketRoute(TWILIO_PATH, twilio),
            Route("/calls/{sid}", call_route(get_call), methods=["GET"]),
            Route("/calls/{sid}/text", call_route(post_text), methods=["POST"]),
            Route("/calls/{sid}/end", call_route(post_end), methods=["POST"]),
            Route("/calls/{sid}/barge-in", call_route(post_barge_in), methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error},
    )
    app.state.registry = registry
    app.state.handshakes = handshakes
    return app


async def deny_handshake(websocket: WebSocket, code: str, message: str) -> None:
    """Refuse a WebSocket before accepting it: HTTP 403 with a JSON body where the server can send
    one (ASGI's denial-response extension), else a close before accept (also a 403, bodyless).

    uvicorn's websockets-sansio protocol (its default) logs a spurious "ASGI callable returned
    without completing handshake" after a denial response; the client still gets the 403 with its
    body (Kludex/uvicorn#3138 fixes it)."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(error_response(403, code, message))
    else:
        await websocket.close(CLOSE_POLICY)


async def read_body(request: Request) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise ApiError(413, "body_too_large", f"request body over {MAX_BODY_BYTES} bytes")
    return bytes(body)


async def receive_start(websocket: WebSocket, timeout_s: float) -> StartInfo | None:
    """Twilio's `start` (after `connected`); None when the socket closed or stopped first."""
    try:
        async with asyncio.timeout(timeout_s):
            async for message in inbound_messages(websocket):
                if isinstance(message, Start):
                    return message.start
                if isinstance(message, Stop):
                    break
    except TimeoutError:
        log.error("a Twilio socket sent no `start` within %.1f s: closing it", timeout_s)
        await websocket.close(CLOSE_POLICY, "no start message")
    return None


async def inbound_messages(websocket: WebSocket) -> AsyncIterator[InboundMessage]:
    while True:
        try:
            message = await websocket.receive()
        except (WebSocketDisconnect, RuntimeError):
            return
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None:
            log.warning("ignoring a binary frame from Twilio (its protocol is JSON text only)")
            continue
        try:
            yield decode_inbound(text)
        except msgspec.DecodeError as exc:
            log.warning("ignoring a Twilio message: %s: %.200s", exc, text)


async def close_quietly(websocket: WebSocket) -> None:
    try:
        await websocket.close()
    except (RuntimeError, WebSocketDisconnect):
        pass  # already closed by the peer (or by us)
