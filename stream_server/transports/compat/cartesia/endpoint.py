"""`/tts/websocket`: the thin I/O around `CartesiaConversation`.

One task group per connection: the reader (this coroutine) and one task per open context, each
running its own stream (`stream.run`), whose outputs the context's renderer turns into Cartesia
messages. Every message goes out under one send lock, so contexts' messages never interleave
within a frame; cancelling a context cancels its task only, and a frame already being written
is the last of it. A connection with no open context is closed after Cartesia's 5 minutes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import anyio
from starlette.websockets import WebSocket, WebSocketDisconnect

from ....logs import log_event
from ....protocol import ProtocolError
from ....security.guard import client_of
from ....server_state import ServerState
from ....session import ClientGone, Output, Stream, resolve_options
from ....session.core import ControlOverflow
from ..websocket import Binary, Disconnected, TooLarge, close_reason, next_frame, refuse_handshake
from .protocol import (
    Cancel,
    CartesiaConversation,
    ContextRenderer,
    End,
    Flush,
    Open,
    Reply,
    Text,
    error_message,
    stream_error,
)
from .request import Generation, Refused, generation_config

logger = logging.getLogger(__name__)

TRANSPORT = "cartesia"
QUERY = frozenset({"cartesia_version"})
IDLE_CLOSE_S = 300.0  # Cartesia closes a connection idle for 5 minutes
CLOSE_NORMAL, CLOSE_POLICY = 1000, 1008


@dataclass(eq=False)
class _Context:
    stream: Stream
    renderer: ContextRenderer
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)


class _Connection:
    def __init__(self, websocket: WebSocket, state: ServerState, tasks: anyio.abc.TaskGroup) -> None:
        self.websocket = websocket
        self.state = state
        self.tasks = tasks
        self.conversation = CartesiaConversation(state.settings.cartesia_max_contexts)
        self.contexts: dict[str, _Context] = {}
        self.send_lock = anyio.Lock()

    async def send(self, message: str) -> None:
        async with self.send_lock:
            try:
                # Whole or not at all: a cancel must not cut a frame in half.
                with anyio.CancelScope(shield=True):
                    await self.websocket.send_text(message)
            except (WebSocketDisconnect, OSError, RuntimeError) as exc:
                # RuntimeError: closed under us (uvicorn itself closes on bad UTF-8, a huge frame).
                raise ClientGone from exc

    def configure(self, request: Generation):  # type: ignore[no-untyped-def]
        return generation_config(request, self.state.settings, self.state.providers, containers=("raw",))

    async def receive(self, text: str) -> None:
        for command in self.conversation.receive(text, self.configure):
            if type(command) is Reply:
                await self.send(command.message)
            elif type(command) is Open:
                if not await self.open(command):
                    return  # refused: the rest of this message was for it
            elif type(command) is Cancel:
                context = self.contexts.pop(command.context_id, None)
                if context is not None:
                    context.scope.cancel()
                    log_event(logger, "cartesia.cancel", stream=context.stream.id, context=command.context_id)
            else:
                await self.apply(command)

    async def open(self, command: Open) -> bool:
        state = self.state
        try:
            options = resolve_options(command.config, state.settings, state.providers)
            stream = await state.open_stream(options, TRANSPORT, client=client_of(self.websocket))
        except ProtocolError as exc:
            self.conversation.closed(command.context_id)
            await self.send(error_message(stream_error(exc), command.context_id))
            return False
        context = _Context(stream, ContextRenderer(command.context_id))
        self.contexts[command.context_id] = context
        log_event(
            logger, "stream.open", stream=stream.id, client=state.client_of(stream).label, transport=TRANSPORT,
            context=command.context_id, provider=options.provider, voice=options.voice, format=options.format.name,
            sample_rate=options.sample_rate,
        )  # fmt: skip
        self.tasks.start_soon(self.run, command.context_id, context)
        return True

    async def apply(self, command: Text | Flush | End) -> None:
        context = self.contexts.get(command.context_id)
        if context is None:
            return
        stream = context.stream
        try:
            if type(command) is Text:
                await stream.text(command.text)
            elif type(command) is Flush:
                stream.flush()
                for reply in context.renderer.flushed(stream.core.planned_segments):
                    stream.reply(reply)
            else:
                stream.end()
        except ProtocolError as exc:  # a limit (pending text, the key's characters): dropped, said
            log_event(logger, "stream.client_error", stream=stream.id, code=exc.code)
            await self.send(self.conversation.refused(command.context_id, exc))

    async def run(self, context_id: str, context: _Context) -> None:
        stream = context.stream

        async def render(output: Output) -> None:
            for message in context.renderer.render(output):
                await self.send(message)

        try:
            with context.scope:
                try:
                    await stream.run(render)
                except* ControlOverflow:
                    log_event(logger, "stream.overflow", level=logging.WARNING, stream=stream.id)
                    refused = Refused(429, "too_many_replies", "too many unread replies on this context")
                    await self.send(error_message(refused, context_id))
        except* ClientGone:
            self.tasks.cancel_scope.cancel()
        finally:
            self.state.close_stream(stream)
            if self.contexts.get(context_id) is context:
                del self.contexts[context_id]
                self.conversation.closed(context_id)
            log_event(logger, "stream.closed", stream=stream.id, context=context_id)


async def tts_socket(websocket: WebSocket) -> None:
    state: ServerState = websocket.app.state.server
    unknown = sorted(set(websocket.query_params) - QUERY)
    if unknown:
        refused = Refused(400, "invalid_query_parameter", f"unknown query parameter {unknown[0][:40]!r}")
        await refuse_handshake(websocket, 400, refused.body(), {}, CLOSE_POLICY)
        return
    await websocket.accept()
    limit = state.settings.max_message_bytes
    async with anyio.create_task_group() as tasks:
        connection = _Connection(websocket, state, tasks)
        while True:
            frame: object = None
            with anyio.move_on_after(IDLE_CLOSE_S if not connection.contexts else None):
                frame = await next_frame(websocket, limit)
            try:
                if frame is None:  # idle
                    await websocket.close(CLOSE_NORMAL, close_reason("no context for 5 minutes"))
                    break
                if type(frame) is Disconnected:
                    break
                if type(frame) is TooLarge:
                    refused = Refused(400, "message_too_large", f"message over {frame.limit} bytes")
                    await connection.send(error_message(refused, None))
                elif type(frame) is Binary:
                    refused = Refused(400, "invalid_request", "binary frames are not accepted; send JSON text messages")
                    await connection.send(error_message(refused, None))
                else:
                    await connection.receive(str(frame))
            except (ClientGone, OSError, RuntimeError):
                break
        tasks.cancel_scope.cancel()
