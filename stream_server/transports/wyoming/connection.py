"""One Wyoming client connection: the thin I/O around `Conversation`.

One task group per connection: the reader (client bytes -> events -> commands), and the stream
of the request being answered, whose `run` renders its outputs as Wyoming events. All writes go
through one lock, so an event is never cut by another. The client closing its socket (Home
Assistant's barge-in: it stops reading and disconnects) cancels the group: the stream and its
synthesis end and are released at once.
"""

from __future__ import annotations

import logging

import anyio
import anyio.abc
from wyoming.event import Event

from ...logs import log_event
from ...protocol import Config, Error, ErrorCode, ProtocolError
from ...security import Client
from ...server_state import ServerState
from ...session import ClientGone, Outcome, Output, Stream, resolve_options
from .conversation import Close, Command, Conversation, Feed, Finish, Open, Reply, error_event
from .framing import EventDecoder, FrameError, encode_event
from .voices import Voices

logger = logging.getLogger(__name__)

TRANSPORT = "wyoming"
WYOMING_CLIENT = Client("wyoming")
"""Every Wyoming client is one client of the per-key limits (--key-max-streams...): Wyoming has no
keys, and one entry bounds the limits' memory whatever the number of addresses."""
READ_BYTES = 65536
# A goodbye to a client refused before its connection starts gets this long to leave.
REPLY_TIMEOUT_S = 10.0


class ConnectionClosed(Exception):
    """The client went away, or the server ends the connection."""


class WyomingConnection:
    def __init__(self, state: ServerState, voices: Voices, client: anyio.abc.ByteStream, peer: str) -> None:
        self._state = state
        self._client = client
        self._peer = peer
        self._conversation = Conversation(voices)
        self._decoder = EventDecoder(state.settings.max_message_bytes)
        self._write_lock = anyio.Lock()
        self._stream: Stream | None = None
        self._last_heard = self._stream_ended = anyio.current_time()

    async def run(self) -> None:
        async with anyio.create_task_group() as connection:
            try:
                await self._read(connection)
            except ConnectionClosed:
                pass
            connection.cancel_scope.cancel()

    # -- reading ------------------------------------------------------------------------------------

    async def _read(self, connection: anyio.abc.TaskGroup) -> None:
        idle_s = self._state.settings.idle_timeout_s
        while True:
            # Between requests the connection holds no stream: it may wait this long for the next
            # (a request's stream has deadlines of its own). Checked at least every `idle_s`.
            data: bytes | None = None
            with anyio.move_on_after(idle_s):
                try:
                    data = await self._client.receive(READ_BYTES)
                except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                    return  # gone: the task group's cancellation frees the stream
            if data is None:
                quiet_since = max(self._last_heard, self._stream_ended)
                if self._stream is None and anyio.current_time() - quiet_since >= idle_s:
                    await self._reply(error_event(ErrorCode.IDLE_TIMEOUT, f"no request for {idle_s:g} s; closing"))
                    return
                continue
            self._last_heard = anyio.current_time()
            self._decoder.feed(data)
            await self._handle_buffered(connection)

    async def _handle_buffered(self, connection: anyio.abc.TaskGroup) -> None:
        while True:
            try:
                event = self._decoder.next_event()
            except FrameError as exc:
                log_event(logger, "wyoming.client_error", peer=self._peer, code=exc.code)
                await self._reply(error_event(exc.code, exc.message))
                if exc.fatal:
                    raise ConnectionClosed from None
                continue
            if event is None:
                return
            await self._handle(event, connection)

    async def _handle(self, event: Event, connection: anyio.abc.TaskGroup) -> None:
        await self._do(self._conversation.receive(event), connection)

    async def _do(self, commands: list[Command], connection: anyio.abc.TaskGroup) -> None:
        for command in commands:
            if type(command) is Reply:
                await self._reply(command.event)
            elif type(command) is Open:
                await self._open(command, connection)
            elif type(command) is Feed:
                await self._feed(command.text)
            elif type(command) is Finish:
                if self._stream is not None and self._stream.core.open:
                    self._stream.end()
            elif type(command) is Close:
                raise ConnectionClosed

    async def _open(self, command: Open, connection: anyio.abc.TaskGroup) -> None:
        provider, voice = command.voice or (None, None)
        # pcm at the voice's own rate, sent as fast as it is made (Home Assistant buffers it).
        config = Config(provider=provider, voice=voice, format="pcm", max_lead_ms=0)
        try:
            options = resolve_options(config, self._state.settings, self._state.providers)
            stream = await self._state.open_stream(options, TRANSPORT, client=WYOMING_CLIENT)
        except ProtocolError as exc:
            await self._do(self._conversation.refused(exc), connection)
            return
        if command.text is not None:
            try:
                await stream.text(command.text)
                stream.end()
            except ProtocolError as exc:  # a limit: nothing was sent yet
                self._state.close_stream(stream)
                await self._do(self._conversation.refused(exc), connection)
                return
        self._conversation.opened(options.sample_rate)
        self._stream = stream
        log_event(
            logger, "stream.open", stream=stream.id, client=WYOMING_CLIENT.label, peer=self._peer,
            provider=options.provider, voice=options.voice, sample_rate=options.sample_rate,
            streaming=command.text is None,
        )  # fmt: skip
        connection.start_soon(self._run_stream, stream, connection.cancel_scope, name=f"wyoming-{stream.id}")

    async def _feed(self, text: str) -> None:
        stream = self._stream
        if stream is None or not stream.core.open:
            return  # stopped by the server: its goodbye is on its way
        try:
            await stream.text(text)
        except ProtocolError as exc:
            log_event(logger, "stream.client_error", stream=stream.id, code=exc.code)
            stream.reply(Error(code=exc.code, message=exc.message, retry_after_ms=exc.retry_after_ms))

    # -- the request's stream -------------------------------------------------------------------------

    async def _run_stream(self, stream: Stream, connection: anyio.CancelScope) -> None:
        outcome = Outcome.GONE
        try:
            outcome = await stream.run(self._render)
        finally:
            self._state.close_stream(stream)
            self._stream = None
            self._stream_ended = anyio.current_time()
            self._conversation.over()
            log_event(logger, "stream.closed", stream=stream.id, outcome=outcome.value)
        if outcome is not Outcome.DONE:
            connection.cancel()  # stopped by the server (its error was sent), abandoned, or gone

    async def _render(self, output: Output) -> None:
        try:
            for event in self._conversation.render(output):
                await self._write(event)
        except ConnectionClosed as exc:
            raise ClientGone from exc

    # -- writing ------------------------------------------------------------------------------------

    async def _reply(self, event: Event) -> None:
        await self._write(event)

    async def _write(self, event: Event) -> None:
        """Send one event; a client that takes nothing for --write-timeout-s (it stopped reading)
        loses its connection, as an HTTP or WebSocket client does (connections/)."""
        data = encode_event(event)
        async with self._write_lock:
            try:
                with anyio.fail_after(self._state.settings.write_timeout_s):
                    await self._client.send(data)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError, TimeoutError) as exc:
                raise ConnectionClosed from exc

