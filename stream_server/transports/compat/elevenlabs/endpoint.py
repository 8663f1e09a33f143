"""`/v1/text-to-speech/{voice_id}/stream-input` and `…/multi-stream-input`: the thin I/O around
`ElevenLabsConversation`.

One task group per connection: the reader (this coroutine) and one `stream.run` per context,
each rendering its stream's outputs as ElevenLabs messages through one send lock, so that
messages never interleave mid-frame. Ending or failing one context touches no other. A refused
URL (unknown voice, model or format) is refused at the handshake, with ElevenLabs' HTTP error
body.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging

import anyio
import anyio.abc
from starlette.websockets import WebSocket, WebSocketDisconnect

from ....logs import log_event
from ....protocol import ErrorCode, ProtocolError
from ....security.guard import client_of, credential_pending
from ....security.keys import Client
from ....server_state import ServerState
from ....session import ClientGone, Output, Relay, Stream, resolve_options
from ....session.core import ControlOverflow
from ....session.options import StreamOptions
from ...closing import CLOSE_TIMEOUT_S, close_in_time
from ..websocket import Binary, Disconnected, TooLarge, close_reason, next_frame, refuse_handshake
from .protocol import (
    CLOSE_POLICY,
    CLOSE_TOO_BIG,
    CLOSE_UNSUPPORTED_DATA,
    Action,
    Answer,
    Authenticate,
    CloseSocket,
    Command,
    ElevenLabsConversation,
    Open,
    Send,
    error_message,
)
from .request import Refused, speech_request

logger = logging.getLogger(__name__)

TRANSPORT = "elevenlabs"


async def stream_input(websocket: WebSocket) -> None:
    await _serve(websocket, multi=False)


async def multi_stream_input(websocket: WebSocket) -> None:
    await _serve(websocket, multi=True)


async def _serve(websocket: WebSocket, *, multi: bool) -> None:
    state: ServerState = websocket.app.state.server
    voice_id = websocket.path_params["voice_id"]
    try:
        request = speech_request(voice_id, websocket.query_params, state.settings, state.providers, socket=True)
        options = resolve_options(request.config, state.settings, state.providers)
    except (Refused, ProtocolError) as exc:
        refusal = exc if isinstance(exc, Refused) else Refused(400, "invalid_request", exc.message)
        log_event(logger, "elevenlabs.refused", code=refusal.code)
        await refuse_handshake(websocket, refusal.status, refusal.body(), {}, CLOSE_POLICY)
        return
    await websocket.accept()
    options = dataclasses.replace(options, idle_timeout_s=request.inactivity_timeout_s)
    conversation = ElevenLabsConversation(multi=multi, max_contexts=state.settings.elevenlabs_max_contexts)
    connection = _Connection(websocket, state, conversation, options, client_of(websocket))
    log_event(
        logger, "elevenlabs.open", multi=multi, voice_id=voice_id[:64], model=request.model_id[:64],
        provider=options.provider, voice=options.voice, format=options.format.name, sample_rate=options.sample_rate,
    )  # fmt: skip
    try:
        async with anyio.create_task_group() as tasks:
            connection.tasks = tasks
            await connection.read()
            tasks.cancel_scope.cancel()
    except* ControlOverflow:
        log_event(logger, "stream.overflow", level=logging.WARNING, transport=TRANSPORT)
        await connection.close(CLOSE_POLICY, "too many unread replies")
    finally:
        connection.close_all()


class _Connection:
    def __init__(
        self, websocket: WebSocket, state: ServerState, conversation: ElevenLabsConversation,
        options: StreamOptions, client: Client,
    ) -> None:  # fmt: skip
        self._websocket = websocket
        self._state = state
        self._conversation = conversation
        self._options = options
        self._client = client
        self._pending_credential = credential_pending(websocket)
        self._streams: dict[str | None, Stream] = {}
        self._send_lock = anyio.Lock()
        self._closed = False
        self.tasks: anyio.abc.TaskGroup | None = None

    async def read(self) -> None:
        """Client frames into actions, until the client goes away or the socket is closed."""
        limit = self._state.settings.max_message_bytes
        while not self._closed:
            quiet_s = self._quiet_limit_s()
            with anyio.move_on_after(quiet_s) as waiting:
                frame = await next_frame(self._websocket, limit)
            if waiting.cancelled_caught:
                log_event(logger, "elevenlabs.quiet_socket_closed", waited_s=quiet_s, key_pending=self._pending_credential)
                with contextlib.suppress(ClientGone):
                    await self._send(error_message("input_timeout_exceeded", f"nothing received for {quiet_s:g} s"))
                await self.close(CLOSE_POLICY, "input_timeout_exceeded")
                return
            if type(frame) is Disconnected:
                return
            if type(frame) is TooLarge:
                actions = self._conversation.unusable(f"message over {frame.limit} bytes", CLOSE_TOO_BIG)
            elif type(frame) is Binary:
                why = "binary frames are not accepted; send JSON text"
                actions = self._conversation.unusable(why, CLOSE_UNSUPPORTED_DATA)
            else:
                actions = self._conversation.receive(str(frame))
            try:
                for action in actions:
                    if not await self._act(action):
                        return
            except ClientGone:
                return

    def _quiet_limit_s(self) -> float | None:
        """How long the socket may stay silent: until its key arrives, --header-timeout-s (a
        socket that never authenticates must not hold a connection slot); with no context open,
        its inactivity timeout, as ElevenLabs closes an unused socket; with contexts open, no
        limit here (each context's stream has its own idle deadline)."""
        if self._pending_credential:
            return self._state.settings.header_timeout_s
        if not self._streams:
            return self._options.idle_timeout_s
        return None

    async def _act(self, action: Action) -> bool:
        """Carry out one action; False: the socket is closed."""
        if type(action) is Authenticate:
            return await self._authenticate(action.key)
        if type(action) is Open:
            refused = await self._open(action)
            if refused is not None:
                return await self._act(refused)
        elif type(action) is Command:
            stream = self._streams.get(action.context)
            if stream is not None:
                await self._command(stream, action)
        elif type(action) is Answer:
            stream = self._streams.get(action.context)
            if stream is not None and action.close is None:
                stream.reply(Relay(action.message))  # in order with the context's audio
            else:
                await self._send(action.message)
            if action.close is not None:
                await self.close(action.close, "invalid input")
                return False
        elif type(action) is CloseSocket:
            await self.close(action.code, action.reason)
            return False
        return True

    async def _authenticate(self, key: str | None) -> bool:
        if not self._pending_credential:
            return True
        client = self._state.access.keys.lookup(key) if key else None
        if client is None:
            why = "unknown API key" if key else "no API key: send it as the xi-api-key header or in the first message"
            log_event(logger, "elevenlabs.refused", code=ErrorCode.UNAUTHORIZED)
            await self._send(error_message("invalid_api_key", why))
            await self.close(CLOSE_POLICY, "invalid_api_key")
            return False
        self._client, self._pending_credential = client, False
        return True

    async def _open(self, action: Open) -> Answer | None:
        """Open the context's stream and start running it; the answer when it may not open."""
        options = self._options if action.speed is None else dataclasses.replace(self._options, speed=action.speed)
        try:
            stream = await self._state.open_stream(options, TRANSPORT, client=self._client)
        except ProtocolError as exc:  # the server or the client's key is at its limit
            log_event(logger, "elevenlabs.context_refused", code=exc.code)
            return self._conversation.not_opened(action.context, exc)
        self._streams[action.context] = stream
        log_event(logger, "stream.open", stream=stream.id, transport=TRANSPORT, context=_label(action.context))
        assert self.tasks is not None
        self.tasks.start_soon(self._run, action.context, stream)
        return None

    async def _command(self, stream: Stream, command: Command) -> None:
        try:
            if command.kind == "text":
                await stream.text(command.text)
            elif command.kind == "flush":
                stream.flush()
            elif command.kind == "end":
                stream.end()
            elif command.kind == "drop":
                stream.cancel()
                stream.end()
            elif stream.core.open and not stream.core.input_ended:
                await stream.text("")  # a keep-alive: the idle clock starts again
        except ProtocolError as exc:
            # A limit (pending text, the key's characters): the text is dropped, and said.
            log_event(logger, "stream.client_error", stream=stream.id, code=exc.code)
            stream.reply(Relay(self._conversation.refused(command.context, exc).message))

    async def _run(self, context: str | None, stream: Stream) -> None:
        try:
            await stream.run(lambda output: self._render(context, output))
        finally:
            self._state.close_stream(stream)
            del self._streams[context]
            after = self._conversation.finished(context)
            log_event(logger, "stream.closed", stream=stream.id)
        for action in after:
            await self._act(action)  # the last context after `close_socket`: the socket closes

    async def _render(self, context: str | None, output: Output) -> None:
        for item in self._conversation.render(context, output):
            if type(item) is Send:
                await self._send(item.data)
            elif type(item) is CloseSocket:
                await self.close(item.code, item.reason)

    async def _send(self, data: str) -> None:
        try:
            async with self._send_lock:
                await self._websocket.send_text(data)
        except (WebSocketDisconnect, OSError, RuntimeError) as exc:
            # RuntimeError: the connection was closed under us (uvicorn closes with 1007 or 1009
            # itself on invalid UTF-8 or an oversized frame, and then refuses to send).
            raise ClientGone from exc

    async def close(self, code: int, reason: str) -> None:
        """Close the socket (once) and end the connection: the reader and every context."""
        if not self._closed:
            self._closed = True
            # The lock too is waited for no longer than the close itself may take.
            with contextlib.suppress(TimeoutError), anyio.fail_after(CLOSE_TIMEOUT_S):
                async with self._send_lock:
                    await close_in_time(self._websocket, code, close_reason(reason))
        if self.tasks is not None:
            self.tasks.cancel_scope.cancel()

    def close_all(self) -> None:
        for stream in list(self._streams.values()):
            self._state.close_stream(stream)


def _label(context: str | None) -> str:
    return "" if context is None else context[:64]
