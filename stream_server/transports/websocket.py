"""`/v1/tts/stream`: the WebSocket edge. It reads frames, hands decoded messages to the session,
and sends what the outbox yields; all stream logic lives in `session` and `protocol`.

Two tasks per connection: this one reads (so `cancel` gets through while audio is being sent),
and a sender drains the outbox. When the sender is stalled by a client that does not read, the
ring fills and synthesis waits: backpressure reaches the provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass

import msgspec
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..audio import EncodedFrame
from ..buffer import Outbox, OutboxOverflow, Pacer
from ..logs import log_event
from ..protocol import (
    Cancel,
    Cancelled,
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
from ..security.guard import client_of
from ..server_state import ServerState
from ..session import (
    STREAM_DONE,
    OutItem,
    StreamOptions,
    StreamSession,
    config_from_query,
    ready_message,
    resolve_options,
)

logger = logging.getLogger(__name__)

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN = 1013

# How a stream the server cannot open, or ends itself, is closed; other refusals close with 1008.
_CLOSE_CODES = {
    ErrorCode.SERVER_BUSY: CLOSE_TRY_AGAIN,
    ErrorCode.TOO_MANY_STREAMS: CLOSE_TRY_AGAIN,
    ErrorCode.RATE_LIMITED: CLOSE_TRY_AGAIN,
    ErrorCode.SHUTTING_DOWN: CLOSE_GOING_AWAY,
    ErrorCode.IDLE_TIMEOUT: CLOSE_NORMAL,
}
# A client that takes nothing more does not get a close frame after this long either.
CLOSE_TIMEOUT_S = 5.0
# Not stream options: the browser token was checked by the guard.
_NOT_CONFIG = frozenset({"token"})


@dataclass(frozen=True, slots=True)
class _Close:
    code: int
    reason: str = ""


async def stream_endpoint(websocket: WebSocket) -> None:
    await websocket.accept()
    await _Connection(websocket, websocket.app.state.server).run()


class _Connection:
    def __init__(self, websocket: WebSocket, state: ServerState) -> None:
        self._ws = websocket
        self._state = state
        self._id = uuid.uuid4().hex[:12]
        self._outbox: Outbox[OutItem | _Close] = Outbox()
        self._query = Config()
        self._session: StreamSession | None = None
        self._pacer = Pacer(0)
        self._first_message = True
        self._closing = False
        self._abandoned = asyncio.Event()

    async def run(self) -> None:
        try:
            self._query = config_from_query({k: v for k, v in self._ws.query_params.items() if k not in _NOT_CONFIG})
            options = resolve_options(self._query, self._state.settings, self._state.providers)
            self._open_session(options)
        except ProtocolError as exc:
            # Nothing usable was asked for, or the server or the client's key is at its limit.
            await self._ws.send_text(encode_server_message(_error(exc)))
            await self._ws.close(_CLOSE_CODES.get(exc.code, CLOSE_POLICY), exc.code)
            return
        sender = asyncio.create_task(self._send_loop(), name=f"send-{self._id}")
        receiver = asyncio.create_task(self._receive_loop(), name=f"receive-{self._id}")
        abandoned = asyncio.create_task(self._abandoned.wait(), name=f"abandon-{self._id}")
        try:
            await asyncio.wait({receiver, abandoned}, return_when=asyncio.FIRST_COMPLETED)
            if receiver.done():
                receiver.result()
            else:
                # Stopped by the server, and the client does not read its close: let it go.
                log_event(logger, "stream.abandoned", level=logging.WARNING, stream=self._id)
        except OutboxOverflow as exc:
            log_event(logger, "stream.overflow", level=logging.WARNING, stream=self._id, error=str(exc))
            sender.cancel()
            # The close frame goes out whether or not the client reads: it is not queued behind
            # the replies it ignored. A socket that takes nothing more is given up on.
            with contextlib.suppress(RuntimeError, OSError, TimeoutError):
                await asyncio.wait_for(self._ws.close(CLOSE_POLICY, "too many unread replies"), CLOSE_TIMEOUT_S)
        finally:
            for task in (sender, receiver, abandoned):
                task.cancel()
            await asyncio.gather(sender, receiver, abandoned, return_exceptions=True)
            await self._close_session()
            log_event(logger, "stream.closed", stream=self._id)

    # -- reading -------------------------------------------------------------------------------

    async def _receive_loop(self) -> None:
        limit = self._state.settings.max_message_bytes
        while True:
            message = await self._ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            if self._closing:
                continue
            text = message.get("text")
            if text is None:
                self._reply_error(ProtocolError(ErrorCode.BAD_MESSAGE, "binary frames are not accepted; send JSON text frames"))
                continue
            # len(text) bounds the UTF-8 size from below: encode only when it could matter.
            if len(text) > limit or (4 * len(text) > limit and len(text.encode()) > limit):
                self._reply_error(ProtocolError(ErrorCode.MESSAGE_TOO_LARGE, f"message over {limit} bytes"))
                self._outbox.send_control(_Close(CLOSE_TOO_BIG, ErrorCode.MESSAGE_TOO_LARGE))
                self._closing = True
                continue
            try:
                await self._handle(decode_client_message(text))
            except ProtocolError as exc:
                # A refused message changes nothing: a bad first config can be corrected.
                self._reply_error(exc)
            else:
                self._first_message = False

    async def _handle(self, message: ClientMessage) -> None:
        session = self._session
        assert session is not None
        match message:
            case Text(text=text):
                session.push_text(text)
            case Flush():
                session.flush()
            case Cancel():
                await session.cancel()
                self._pacer.reset()
                self._outbox.send_control(Cancelled())
            case End():
                session.end()
            case Config():
                await self._reconfigure(message)

    async def _reconfigure(self, message: Config) -> None:
        if not self._first_message:
            raise ProtocolError(ErrorCode.CONFIG_TOO_LATE, "config is only accepted as the first message")
        # As in the URL, an empty string counts as absent.
        given = {f: v for f in message.__struct_fields__ if (v := getattr(message, f)) not in (None, "")}
        requested = msgspec.structs.replace(self._query, **given)
        options = resolve_options(requested, self._state.settings, self._state.providers)
        # Nothing was streamed yet: replace the session made from the URL's parameters.
        assert self._session is not None
        self._attach(await self._state.replace_stream(self._session, options))

    def _reply_error(self, exc: ProtocolError) -> None:
        log_event(logger, "stream.client_error", stream=self._id, code=exc.code)
        self._outbox.send_control(_error(exc))

    async def _stop(self, reason: ProtocolError) -> None:
        """The server ends this stream (idle, too long, shutting down): say why, then close."""
        if self._closing:
            return
        self._closing = True
        log_event(logger, "stream.stopped", stream=self._id, code=reason.code)
        close = _CLOSE_CODES.get(reason.code, CLOSE_POLICY)
        # No network I/O here: the caller (the server's sweep) must not wait on one slow client.
        assert self._session is not None
        self._session.abandon_later()
        try:
            self._outbox.send_control(_error(reason))
            self._outbox.send_control(_Close(close, reason.code))
        except OutboxOverflow:
            self._abandoned.set()

    # -- the session ---------------------------------------------------------------------------

    def _open_session(self, options: StreamOptions) -> None:
        client = client_of(self._ws)
        self._attach(self._state.open_stream(options, "websocket", self._id, client=client, stop=self._stop))

    def _attach(self, session: StreamSession) -> None:
        options = session.options
        session.abandon = self._abandoned.set
        self._outbox.attach(session.ring)
        self._session = session
        self._pacer = Pacer(options.max_lead_ms)
        self._outbox.send_control(ready_message(options))
        log_event(
            logger,
            "stream.open",
            stream=self._id,
            client=self._state.client_of(session).label,
            provider=options.provider,
            voice=options.voice,
            format=options.format.name,
            sample_rate=options.sample_rate,
        )

    async def _close_session(self) -> None:
        if self._session is not None:
            await self._state.close_stream(self._session)

    # -- sending -------------------------------------------------------------------------------

    async def _send_loop(self) -> None:
        try:
            while True:
                item = await self._outbox.get()
                if isinstance(item, _Close):
                    await self._ws.close(item.code, item.reason)
                    return
                session = self._session
                assert session is not None
                if isinstance(item, EncodedFrame):
                    if delay := self._pacer.delay():
                        await asyncio.sleep(delay)  # pacing to real time, not a race fix
                    await self._ws.send_bytes(item.data)
                    self._pacer.sent(item.duration_ms)
                elif item is STREAM_DONE:
                    done = session.stats.done_message()
                    await self._ws.send_text(encode_server_message(done))
                    log_event(logger, "stream.done", stream=self._id, **msgspec.structs.asdict(done))
                    await self._ws.close(CLOSE_NORMAL)
                    return
                else:
                    await self._ws.send_text(encode_server_message(item))  # type: ignore[arg-type]
                session.note_sent(item)
        except WebSocketDisconnect:
            # The client went away while we were sending; the receive loop sees the
            # disconnect and cleans up.
            return


def _error(exc: ProtocolError) -> Error:
    return Error(code=exc.code, message=exc.message, retry_after_ms=exc.retry_after_ms)
