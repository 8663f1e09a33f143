"""`/v1/tts/stream`: the WebSocket adapter. It parses frames into stream commands and renders the
stream's outputs as frames; the stream (session/) decides everything else.

One task group per connection: the reader (so `cancel` gets through while audio is being sent),
the default context's stream run (delivery, synthesis, deadlines), and one run per named context
(a stream of its own, opened by its first message; contexts.py keeps the table and decides whose
audio the socket carries). Every context writes through one send lock. A client that does not
read stalls every context's delivery; each one's ring fills and its synthesis waits:
backpressure reaches the providers. A context waiting for the floor fills only its own ring.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import anyio
import anyio.abc
import msgspec
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..logs import log_event
from ..media import EncodedFrame
from ..protocol import (
    Cancel,
    ClientMessage,
    Config,
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
from ..session import ClientGone, Outcome, Output, Send, Stopped, Stream, config_from_query, resolve_options
from ..session.core import ControlOverflow
from .closing import close_in_time
from .contexts import ContextKey, ContextTable

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
# Not stream options: the browser token was checked by the guard.
_NOT_CONFIG = frozenset({"token"})


async def stream_endpoint(websocket: WebSocket) -> None:
    await websocket.accept()
    state: ServerState = websocket.app.state.server
    try:
        query = config_from_query({k: v for k, v in websocket.query_params.items() if k not in _NOT_CONFIG})
        options = resolve_options(query, state.settings, state.providers)
        stream = await state.open_stream(options, "websocket", client=client_of(websocket))
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
    socket = _Socket(websocket, state, query, stream)
    try:
        async with anyio.create_task_group() as connection:
            connection.start_soon(socket.read, connection, name=f"receive-{stream.id}")
            if await stream.run(socket.renderer(None, stream)) is Outcome.DONE:
                await socket.contexts_finished()  # `end` ended them all: each sends its `done`
                with contextlib.suppress(WebSocketDisconnect, OSError, RuntimeError):
                    async with socket.send_lock:
                        await websocket.close(CLOSE_NORMAL)
            connection.cancel_scope.cancel()
    except* ControlOverflow as overflow:
        log_event(logger, "stream.overflow", level=logging.WARNING, stream=stream.id, error=str(overflow.exceptions[0]))
        # The close frame goes out whether or not the client reads: it is not queued behind the
        # replies it ignored. A socket that takes nothing more is given up on.
        await close_in_time(websocket, CLOSE_POLICY, "too many unread replies")
    finally:
        state.close_stream(stream)
        log_event(logger, "stream.closed", stream=stream.id)


class _Socket:
    """One connection: its default context's stream, its named contexts, the one way out."""

    def __init__(self, websocket: WebSocket, state: ServerState, query: Config, default: Stream) -> None:
        self.websocket = websocket
        self.state = state
        self.query = query
        self.default = default
        self.contexts: ContextTable[Stream] = ContextTable(state.settings.max_contexts)
        self.send_lock = asyncio.Lock()
        """Held for each frame, so that no two contexts' messages interleave inside one (asyncio's:
        taken without a checkpoint when free, so a lone stream's delivery costs no extra turn)."""
        self._changed = anyio.Event()
        """Set (and replaced) when the floor changes hands, a context cancels or one closes."""

    def _wake(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def contexts_finished(self) -> None:
        while len(self.contexts):
            await self._changed.wait()

    # -- reading ------------------------------------------------------------------------------------

    async def read(self, connection: anyio.abc.TaskGroup) -> None:
        """Client frames into commands, until the client goes away, which ends the connection."""
        default, limit = self.default, self.state.settings.max_message_bytes
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                connection.cancel_scope.cancel()
                return
            if not default.core.open:
                continue  # stopped by the server: its goodbye (and the socket's close) is on its way
            text = message.get("text")
            if text is None:
                _refuse(default, None, ProtocolError(ErrorCode.BAD_MESSAGE, "binary frames are not accepted; send JSON text frames"))
                continue
            # len(text) bounds the UTF-8 size from below: encode only when it could matter.
            if len(text) > limit or (4 * len(text) > limit and len(text.encode()) > limit):
                default.stop(ProtocolError(ErrorCode.MESSAGE_TOO_LARGE, f"message over {limit} bytes"))
                continue
            try:
                decoded = decode_client_message(text)
            except ProtocolError as exc:
                _refuse(default, None, exc)  # a refused message changes nothing
                continue
            if decoded.context is None:
                try:
                    await self._default_command(decoded)
                except ProtocolError as exc:
                    _refuse(default, None, exc)  # a bad first config can be corrected
            else:
                await self._context_command(decoded.context, decoded, connection)

    async def _default_command(self, message: ClientMessage) -> None:
        if type(message) is End:
            # The socket's input is over: every open context finishes too, each with its `done`.
            for stream in self.contexts.end_all():
                with contextlib.suppress(ProtocolError):  # it had ended already, or was stopped
                    stream.end()
        await _command(self.default, message, self.query, self.state)

    async def _context_command(self, context: str, message: ClientMessage, connection: anyio.abc.TaskGroup) -> None:
        self.default.keep_alive()  # the socket is in use: its default context does not idle
        stream = self.contexts.get(context)
        if stream is None:
            if type(message) not in (Text, Config):
                _refuse(self.default, context, ProtocolError(ErrorCode.UNKNOWN_CONTEXT, f"no context {context!r} is open; `text` or `config` opens one"))
                return
            try:
                stream = await self._open_context(context, message, connection)
            except ProtocolError as exc:
                _refuse(self.default, context, exc)  # nothing opened: the error goes out in the socket's lane
                return
            if type(message) is Config:
                return  # opened with it
        try:
            await _command(stream, message, self.query, self.state)
        except ProtocolError as exc:
            _refuse(stream, context, exc)
        if type(message) is Cancel:
            self._wake()  # its audio waiting for the floor is dropped at once

    async def _open_context(self, context: str, message: ClientMessage, connection: anyio.abc.TaskGroup) -> Stream:
        self.contexts.admit(context)
        config = _configured(self.query, message) if type(message) is Config else self.query
        options = resolve_options(config, self.state.settings, self.state.providers)
        stream = await self.state.open_stream(options, "websocket", client=client_of(self.websocket))
        self.contexts.add(context, stream)
        log_event(
            logger, "stream.open", stream=stream.id, socket_stream=self.default.id, context=context,
            client=self.state.client_of(stream).label, provider=options.provider, voice=options.voice,
            format=options.format.name, sample_rate=options.sample_rate,
        )  # fmt: skip
        connection.start_soon(self._run_context, context, stream, name=f"context-{stream.id}")
        return stream

    async def _run_context(self, context: str, stream: Stream) -> None:
        try:
            await stream.run(self.renderer(context, stream))
        finally:
            self.contexts.remove(context)
            self._wake()
            self.state.close_stream(stream)
            log_event(logger, "stream.closed", stream=stream.id, context=context)

    # -- writing ------------------------------------------------------------------------------------

    def renderer(self, context: ContextKey, stream: Stream) -> Send:
        """`stream`'s outputs as frames, named with `context`, its audio only while it has the floor."""

        async def render(output: Output) -> None:
            if context is not None:
                self.default.keep_alive()
            epoch = stream.core.epoch
            while True:
                if stream.core.epoch != epoch:
                    # A cancel (or a stop) came while this waited for the floor: it is not sent.
                    if self.contexts.withdraw(context):
                        self._wake()
                    return
                if self.contexts.claim(context, output):
                    break
                await self._changed.wait()
            try:
                async with self.send_lock:
                    await self._write(context, output)
            except (WebSocketDisconnect, OSError, RuntimeError) as exc:
                # RuntimeError: the connection was closed under us (uvicorn closes with 1007 or 1009
                # itself on invalid UTF-8 or an oversized frame, and then refuses to send).
                raise ClientGone from exc
            if self.contexts.sent(context, output):
                self._wake()

        return render

    async def _write(self, context: ContextKey, output: Output) -> None:
        websocket = self.websocket
        if type(output) is EncodedFrame:
            await websocket.send_bytes(output.data)
        elif type(output) is Stopped:
            if context is None:  # the socket's own limits (idle, too long, shutting down, too large)
                await websocket.close(CLOSE_CODES.get(output.reason.code, CLOSE_POLICY), output.reason.code)
            # A named context's stop was said by its `error`; the socket and the others go on.
        else:
            if context is not None and output.context is None:  # type: ignore[union-attr]
                output = msgspec.structs.replace(output, context=context)  # type: ignore[type-var]
            await websocket.send_text(encode_server_message(output))  # type: ignore[arg-type]


async def _command(stream: Stream, message: ClientMessage, query: Config, state: ServerState) -> None:
    match message:
        case Text(text=text):
            await stream.text(text)
        case Flush():
            stream.flush()
        case Cancel(played_ms=played_ms):
            stream.cancel(played_ms)
        case End():
            stream.end()
        case Config():
            stream.core.require_configurable()
            try:
                options = resolve_options(_configured(query, message), state.settings, state.providers)
            except ProtocolError:
                stream.core.refuse_config()  # no audio in a format the client did not ask for
                raise
            stream.reconfigure(options)
            log_event(logger, "stream.configured", stream=stream.id, provider=options.provider, format=options.format.name)


def _configured(query: Config, message: Config) -> Config:
    """The URL's settings with the message's over them; as in the URL, an empty string counts as absent."""
    given = {
        f: v for f in message.__struct_fields__ if f != "context" and (v := getattr(message, f)) not in (None, "")
    }
    return msgspec.structs.replace(query, **given)


def _refuse(stream: Stream, context: ContextKey, exc: ProtocolError) -> None:
    log_event(logger, "stream.client_error", stream=stream.id, context=context, code=exc.code)
    stream.reply(_error(exc, context))


def _error(exc: ProtocolError, context: ContextKey = None) -> Error:
    return Error(code=exc.code, message=exc.message, retry_after_ms=exc.retry_after_ms, context=context)
