"""`/v1/speak` over WebSocket: the thin I/O around `DeepgramConversation`.

As our own WebSocket (transports/websocket.py): one task group per connection, the reader (so a
`Clear` gets through while audio is being sent) and the stream's run, whose outputs the
conversation renders as Deepgram messages. A refused URL (unknown model, encoding, rate) is
refused at the handshake, with Deepgram's HTTP error body and `dg-error` header.
"""

from __future__ import annotations

import logging

import anyio
from starlette.websockets import WebSocket, WebSocketDisconnect

from ....logs import log_event
from ....protocol import ErrorCode, ProtocolError
from ....request_id import new_request_id, request_id_of
from ....security.guard import client_of
from ....server_state import ServerState
from ....session import ClientGone, Output, Relay, Stream, resolve_options
from ....session.core import ControlOverflow
from ...closing import close_in_time
from ..websocket import Binary, Disconnected, TooLarge, close_reason, next_frame, refuse_handshake
from .protocol import (
    CLOSE_POLICY,
    CloseSocket,
    DeepgramConversation,
    Malformed,
    Send,
    UnsupportedData,
    stop_close,
)
from .request import INVALID_QUERY, Refused, speak_request

logger = logging.getLogger(__name__)

TRANSPORT = "deepgram"


async def speak_socket(websocket: WebSocket) -> None:
    state: ServerState = websocket.app.state.server
    request_id = request_id_of(websocket) or new_request_id()
    try:
        request = speak_request(websocket.query_params, state.settings, state.providers, socket=True)
        options = resolve_options(request.config, state.settings, state.providers)
    except (Refused, ProtocolError) as exc:
        refusal = exc if isinstance(exc, Refused) else Refused(400, INVALID_QUERY, exc.message)
        log_event(logger, "deepgram.refused", code=refusal.code)
        headers = {"dg-error": close_reason(refusal.message), "dg-request-id": request_id}
        await refuse_handshake(websocket, refusal.status, refusal.body(request_id), headers, CLOSE_POLICY)
        return
    await websocket.accept(headers=[(b"dg-request-id", request_id.encode())])
    try:
        stream = await state.open_stream(options, TRANSPORT, client=client_of(websocket))
    except ProtocolError as exc:  # the server or the client's key is at its limit
        close = stop_close(exc)
        await websocket.close(close.code, close_reason(close.reason))
        return
    conversation = DeepgramConversation(request_id, request.model)
    log_event(
        logger, "stream.open", stream=stream.id, client=state.client_of(stream).label, transport=TRANSPORT,
        model=request.model, provider=options.provider, voice=options.voice, format=options.format.name,
        sample_rate=options.sample_rate,
    )  # fmt: skip
    try:
        async with anyio.create_task_group() as connection:
            connection.start_soon(_read, websocket, stream, conversation, state, connection.cancel_scope)
            await stream.run(lambda output: _render(websocket, conversation, output))
            connection.cancel_scope.cancel()
    except* ControlOverflow as overflow:
        log_event(logger, "stream.overflow", level=logging.WARNING, stream=stream.id, error=str(overflow.exceptions[0]))
        await close_in_time(websocket, CLOSE_POLICY, "DATA-0001: too many unread replies")
    finally:
        state.close_stream(stream)
        log_event(logger, "stream.closed", stream=stream.id)


async def _read(
    websocket: WebSocket, stream: Stream, conversation: DeepgramConversation, state: ServerState,
    connection: anyio.CancelScope,
) -> None:  # fmt: skip
    """Client frames into stream commands, until the client goes away, which ends the connection."""
    limit = state.settings.max_message_bytes
    while True:
        frame = await next_frame(websocket, limit)
        if type(frame) is Disconnected:
            connection.cancel()
            return
        if not stream.core.open:
            continue  # stopped by the server: its goodbye is on its way
        if type(frame) is TooLarge:
            stream.stop(ProtocolError(ErrorCode.MESSAGE_TOO_LARGE, f"message over {frame.limit} bytes"))
        elif type(frame) is Binary:
            stream.stop(UnsupportedData())
        else:
            try:
                await _command(stream, conversation, str(frame))
            except Malformed as exc:
                stream.stop(exc)


async def _command(stream: Stream, conversation: DeepgramConversation, text: str) -> None:
    command = conversation.receive(text)
    try:
        if command.kind == "text":
            await stream.text(command.text)
        elif command.kind == "flush":
            stream.flush()
            for reply in conversation.flushed(stream.core.planned_segments):
                stream.reply(reply)
        elif command.kind == "clear":
            conversation.cleared(stream.core.planned_segments)
            stream.cancel()
        elif command.kind == "close":
            stream.end()
        else:
            log_event(logger, "stream.client_error", stream=stream.id, code=ErrorCode.BAD_MESSAGE)
            stream.reply(Relay(command.text))
    except ProtocolError as exc:
        # Text after `Close`, or a limit (pending text, the key's characters): dropped, said.
        log_event(logger, "stream.client_error", stream=stream.id, code=exc.code)
        stream.reply(Relay(conversation.refused(exc)))


async def _render(websocket: WebSocket, conversation: DeepgramConversation, output: Output) -> None:
    try:
        for item in conversation.render(output):
            if type(item) is Send:
                if isinstance(item.data, bytes):
                    await websocket.send_bytes(item.data)
                else:
                    await websocket.send_text(item.data)
            elif type(item) is CloseSocket:
                await websocket.close(item.code, close_reason(item.reason))
    except (WebSocketDisconnect, OSError, RuntimeError) as exc:
        # RuntimeError: the connection was closed under us (uvicorn closes with 1007 or 1009
        # itself on invalid UTF-8 or an oversized frame, and then refuses to send).
        raise ClientGone from exc
