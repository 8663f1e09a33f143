"""`/v1/tts/stream`: the WebSocket adapter. It parses frames into stream commands and renders the
stream's outputs as frames; the stream (session/) decides everything else.

One task group per connection: the reader (so `cancel` gets through while audio is being sent)
and the stream's own run (delivery, synthesis, deadlines). A client that does not read stalls
delivery; the ring fills and synthesis waits: backpressure reaches the provider.
"""

from __future__ import annotations

import contextlib
import logging

import anyio
import msgspec
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..logs import log_event
from ..media import EncodedFrame
from ..protocol import (
    Cancel,
    ClientMessage,
    Config,
    Done,
    End,
    Error,
    ErrorCode,
    Flush,
    ProtocolError,
    Text,
    decode_client_message,
    encode_server_message,
)
from ..request_id import request_id_of
from ..security.guard import client_of
from ..server_state import ServerState
from ..session import ClientGone, Output, Stopped, Stream, config_from_query, resolve_options
from ..session.core import ControlOverflow

logger = logging.getLogger(__name__)

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN = 1013

# How a stream the server cannot open, or ends itself, is closed; other refusals close with 1008.
CLOSE_CODES = {
    ErrorCode.SERVER_BUSY: CLOSE_TRY_AGAIN,
    ErrorCode.TOO_MANY_STREAMS: CLOSE_TRY_AGAIN,
    ErrorCode.RATE_LIMITED: CLOSE_TRY_AGAIN,
    ErrorCode.SHUTTING_DOWN: CLOSE_GOING_AWAY,
    ErrorCode.IDLE_TIMEOUT: CLOSE_NORMAL,
    ErrorCode.MESSAGE_TOO_LARGE: CLOSE_TOO_BIG,
}
# A client that takes nothing more does not get a close frame after this long either.
CLOSE_TIMEOUT_S = 5.0
# Not stream options: the browser token was checked by the guard.
_NOT_CONFIG = frozenset({"token"})


async def stream_endpoint(websocket: WebSocket) -> None:
    await websocket.accept()
    state: ServerState = websocket.app.state.server
    try:
        query = config_from_query({k: v for k, v in websocket.query_params.items() if k not in _NOT_CONFIG})
        options = resolve_options(query, state.settings, state.providers)
        stream = state.open_stream(options, "websocket", client=client_of(websocket))
    except ProtocolError as exc:
        # Nothing usable was asked for, or the server or the client's key is at its limit.
        await websocket.send_text(encode_server_message(_error(exc)))
        await websocket.close(CLOSE_CODES.get(exc.code, CLOSE_POLICY), exc.code)
        return
    log_event(
        logger, "stream.open", stream=stream.id, request=request_id_of(websocket), client=state.client_of(stream).label,
        provider=options.provider,
        voice=options.voice, format=options.format.name, sample_rate=options.sample_rate,
    )  # fmt: skip
    try:
        async with anyio.create_task_group() as connection:
            connection.start_soon(_read, websocket, stream, query, state, connection.cancel_scope, name=f"receive-{stream.id}")
            await stream.run(lambda output: _render(websocket, output))
            connection.cancel_scope.cancel()
    except* ControlOverflow as overflow:
        log_event(logger, "stream.overflow", level=logging.WARNING, stream=stream.id, error=str(overflow.exceptions[0]))
        # The close frame goes out whether or not the client reads: it is not queued behind the
        # replies it ignored. A socket that takes nothing more is given up on.
        with contextlib.suppress(RuntimeError, OSError, TimeoutError):
            with anyio.fail_after(CLOSE_TIMEOUT_S):
                await websocket.close(CLOSE_POLICY, "too many unread replies")
    finally:
        state.close_stream(stream)
        log_event(logger, "stream.closed", stream=stream.id)


async def _read(
    websocket: WebSocket, stream: Stream, query: Config, state: ServerState, connection: anyio.CancelScope
) -> None:
    """Client frames into stream commands, until the client goes away, which ends the connection."""
    limit = state.settings.max_message_bytes
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            connection.cancel()
            return
        if not stream.core.open:
            continue  # stopped by the server: its goodbye is on its way
        text = message.get("text")
        if text is None:
            _refuse(stream, ProtocolError(ErrorCode.BAD_MESSAGE, "binary frames are not accepted; send JSON text frames"))
            continue
        # len(text) bounds the UTF-8 size from below: encode only when it could matter.
        if len(text) > limit or (4 * len(text) > limit and len(text.encode()) > limit):
            stream.stop(ProtocolError(ErrorCode.MESSAGE_TOO_LARGE, f"message over {limit} bytes"))
            continue
        try:
            _command(stream, decode_client_message(text), query, state)
        except ProtocolError as exc:
            _refuse(stream, exc)  # a refused message changes nothing: a bad first config can be corrected


def _command(stream: Stream, message: ClientMessage, query: Config, state: ServerState) -> None:
    match message:
        case Text(text=text):
            stream.text(text)
        case Flush():
            stream.flush()
        case Cancel():
            stream.cancel()
        case End():
            stream.end()
        case Config():
            stream.core.require_configurable()
            # As in the URL, an empty string counts as absent.
            given = {f: v for f in message.__struct_fields__ if (v := getattr(message, f)) not in (None, "")}
            try:
                options = resolve_options(msgspec.structs.replace(query, **given), state.settings, state.providers)
            except ProtocolError:
                stream.core.refuse_config()  # no audio in a format the client did not ask for
                raise
            stream.reconfigure(options)
            log_event(logger, "stream.configured", stream=stream.id, provider=options.provider, format=options.format.name)


def _refuse(stream: Stream, exc: ProtocolError) -> None:
    log_event(logger, "stream.client_error", stream=stream.id, code=exc.code)
    stream.reply(_error(exc))


async def _render(websocket: WebSocket, output: Output) -> None:
    try:
        if type(output) is EncodedFrame:
            await websocket.send_bytes(output.data)
        elif type(output) is Stopped:
            await websocket.close(CLOSE_CODES.get(output.reason.code, CLOSE_POLICY), output.reason.code)
        else:
            await websocket.send_text(encode_server_message(output))  # type: ignore[arg-type]
            if type(output) is Done:
                await websocket.close(CLOSE_NORMAL)
    except (WebSocketDisconnect, OSError, RuntimeError) as exc:
        # RuntimeError: the connection was closed under us (uvicorn closes with 1007 or 1009 itself
        # on invalid UTF-8 or an oversized frame, and then refuses to send).
        raise ClientGone from exc


def _error(exc: ProtocolError) -> Error:
    return Error(code=exc.code, message=exc.message, retry_after_ms=exc.retry_after_ms)
