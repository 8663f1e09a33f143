"""One stream over the WebSocket protocol (docs/protocol.md): text in, typed events out.

    async with connect("ws://127.0.0.1:8000/v1/tts/stream", voice="low") as stream:
        await stream.send_text("Hello there. ")
        await stream.end()
        async for event in stream:
            ...

Sending and receiving are independent: send from one task while another iterates the events.
"""

from __future__ import annotations

import asyncio
import json
import time
from types import TracebackType
from typing import Self, TypedDict, Unpack
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from .errors import (
    ConnectFailed,
    ConnectionLost,
    Forbidden,
    HandshakeRejected,
    InvalidServerUrl,
    ProtocolViolation,
    ServerError,
    Unauthorized,
)
from .messages import (
    AudioChunk,
    Cancel,
    Cancelled,
    ClientMessage,
    Config,
    Done,
    End,
    Error,
    Event,
    Flush,
    Ready,
    SegmentEnd,
    SegmentStart,
    Text,
    Warning,
    decode,
    encode,
)
from .sent_text import SentText

DEFAULT_URL = "ws://127.0.0.1:8000/v1/tts/stream"
MAX_TEXT_PIECE_CHARS = 8000
"""The server refuses messages over 64 KiB (`max_message_bytes`); JSON escapes a character into
at most 6 bytes, so pieces of this many characters always fit."""


class StreamOptions(TypedDict, total=False):
    """The `config` message's fields (docs/protocol.md § config); absent ones: server defaults."""

    provider: str
    voice: str
    format: str
    sample_rate: int
    frame_ms: int
    speed: float
    language: str
    eager_first_segment: int
    boundary_timeout_ms: int
    max_lead_ms: int


def text_pieces(text: str) -> list[str]:
    return [text[i : i + MAX_TEXT_PIECE_CHARS] for i in range(0, len(text), MAX_TEXT_PIECE_CHARS)]


def _with_token(url: str, token: str | None) -> str:
    if token is None:
        return url
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "token"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("token", token)])))


def redacted(url: str) -> str:
    """The URL without its query, which may hold a token: for messages."""
    return urlunsplit(urlsplit(url)._replace(query="", fragment=""))


def _rejection_detail(body: bytes | bytearray | None) -> str:
    """The message of the server's `{"error": {"code", "message"}}` body, if it has one."""
    try:
        error = json.loads(body or b"")["error"]
        return str(error.get("message") or error.get("code") or "")
    except (ValueError, KeyError, TypeError, AttributeError):
        return ""


class Stream:
    """A connection to `/v1/tts/stream`: an async context manager and an async iterator of events.

    Entering connects and waits for the server's `ready` for the requested settings (available as
    `.ready`); settings the server refuses raise `ServerError` there. Iterating yields `AudioChunk`,
    `SegmentStart`, `SegmentEnd`, `Cancelled`, `Warning`, `Error` (the stream goes on) and finally
    `Done`, after which iteration stops. A close after an `error` raises `ServerError`; any other
    early close raises `ConnectionLost`.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        token: str | None = None,
        open_timeout: float = 10.0,
        **options: Unpack[StreamOptions],
    ) -> None:
        self._url = _with_token(url, token)
        self._api_key = api_key
        self._open_timeout = open_timeout
        self._config = Config(**options)
        self._ws: ClientConnection | None = None
        self._sent = SentText()
        self._spoken = asyncio.Event()
        self._open_seq: int | None = None
        self._cancels_unanswered = 0
        self._last_error: Error | None = None
        self._finished = False
        self.ready: Ready | None = None
        self.done: Done | None = None
        self.first_text_sent_at: float | None = None
        """`time.monotonic()` when the first non-empty text was sent."""

    # -- connecting ------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.close()

    async def open(self) -> None:
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        try:
            # compression=None: audio barely deflates, and compressing costs latency on every frame.
            self._ws = await ws_connect(
                self._url, additional_headers=headers, open_timeout=self._open_timeout, compression=None
            )
        except InvalidURI as exc:
            raise InvalidServerUrl(f"not a WebSocket URL: {redacted(self._url)} ({exc.msg})") from None
        except InvalidStatus as exc:
            status = exc.response.status_code
            kind = {401: Unauthorized, 403: Forbidden}.get(status, HandshakeRejected)
            raise kind(status, _rejection_detail(exc.response.body)) from None
        except ConnectionRefusedError:
            raise ConnectFailed(
                f"cannot connect to {redacted(self._url)}: connection refused (is the server running?)"
            ) from None
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            reason = str(exc) or type(exc).__name__
            raise ConnectFailed(f"cannot connect to {redacted(self._url)}: {reason}") from None
        try:
            await asyncio.wait_for(self._await_ready(), self._open_timeout)
        except BaseException:
            await self.close()
            raise

    async def _await_ready(self) -> None:
        """The `ready` for the URL, then (after a `config`) the one for the config, or an error."""
        wanted = 1
        if not self._config.is_empty():
            await self._send(self._config)
            wanted = 2
        seen = 0
        while seen < wanted:
            message = await self._receive_message()
            if isinstance(message, Ready):
                seen += 1
                self.ready = message
            elif isinstance(message, Error):
                raise ServerError(message.code, message.message, message.seq)

    async def _receive_message(self) -> Event:
        """The next message or frame, as it arrives: before any filtering by the stream's state."""
        assert self._ws is not None, "not connected: use `async with`"
        try:
            data = await self._ws.recv()
        except ConnectionClosed as exc:
            self._finished = True
            self._spoken.set()
            error = self._last_error
            code = exc.rcvd.code if exc.rcvd else None
            reason = exc.rcvd.reason if exc.rcvd else ""
            if error is not None and code != 1000:
                raise ServerError(error.code, error.message, error.seq) from None
            raise ConnectionLost(code, reason) from None
        now = time.monotonic()
        if isinstance(data, bytes):
            return AudioChunk(data=data, seq=self._open_seq, received_at=now)
        try:
            message = decode(data)
        except msgspec.DecodeError as exc:
            raise ProtocolViolation(f"undecodable server message: {exc}") from None
        if message is None:
            return await self._receive_message()  # a newer server's message type: not for us
        message.received_at = now
        if isinstance(message, Error):
            self._last_error = message
        return message

    async def close(self) -> None:
        self._finished = True
        self._spoken.set()
        if self._ws is not None:
            await self._ws.close()

    # -- sending ---------------------------------------------------------------------------------

    async def _send(self, message: ClientMessage) -> None:
        assert self._ws is not None, "not connected: use `async with`"
        try:
            await self._ws.send(encode(message))
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
            raise ConnectionLost(code, exc.rcvd.reason if exc.rcvd else "") from None

    async def send_text(self, text: str) -> None:
        """Append text, in any chunking (long text is sent in pieces that fit a message)."""
        for piece in text_pieces(text):
            now = time.monotonic()
            self._sent.add(piece, now)
            if self.first_text_sent_at is None:
                self.first_text_sent_at = now
            await self._send(Text(piece))

    async def flush(self) -> None:
        """Synthesize what is buffered now, even without a sentence end."""
        await self._send(Flush())

    async def cancel(self) -> None:
        """Barge-in. Audio and segments still in flight from before are dropped by this client, up
        to the server's `Cancelled`; everything after it comes from text sent after this call."""
        self._cancels_unanswered += 1
        self._sent.drop_all()
        self._open_seq = None
        self._spoken.set()
        await self._send(Cancel())

    async def end(self) -> None:
        """No more text: the rest is synthesized, then `Done` ends the iteration."""
        await self._send(End())

    @property
    def unspoken_chars(self) -> int:
        """Characters sent whose segments have not started yet (as far as this client has read)."""
        return self._sent.unspoken_chars

    async def wait_unspoken_below(self, limit: int) -> None:
        """Wait while more than `limit` characters are unspoken, so a fast producer does not run
        into the server's `pending_text_limit`. Only returns if another task iterates the events."""
        while self._sent.unspoken_chars > limit and not self._finished:
            self._spoken.clear()
            await self._spoken.wait()

    # -- receiving -------------------------------------------------------------------------------

    def __aiter__(self) -> Stream:
        return self

    async def __anext__(self) -> Event:
        while not self._finished:
            event = await self._receive_message()
            if self._cancels_unanswered and _is_before_cancel(event):
                continue
            match event:
                case SegmentStart():
                    self._open_seq = event.seq
                    event.text_sent_at = self._sent.segment_started(event.text)
                    self._spoken.set()
                case SegmentEnd():
                    self._open_seq = None
                case Cancelled():
                    self._cancels_unanswered = max(0, self._cancels_unanswered - 1)
                    self._open_seq = None
                case Done():
                    self.done = event
                    self._finished = True
                    self._spoken.set()
            return event
        raise StopAsyncIteration


def _is_before_cancel(event: Event) -> bool:
    """While a `cancel` is unanswered: output of the old text, which the protocol says to drop."""
    match event:
        case AudioChunk() | SegmentStart() | SegmentEnd():
            return True
        case Error(seq=seq) | Warning(seq=seq):
            return seq is not None
    return False


def connect(
    url: str = DEFAULT_URL,
    *,
    api_key: str | None = None,
    token: str | None = None,
    open_timeout: float = 10.0,
    **options: Unpack[StreamOptions],
) -> Stream:
    """A stream to enter with `async with`. `api_key` is sent as `Authorization: Bearer`; `token`
    (from `POST /v1/tokens`) as `?token=`. `options` become the first `config` message."""
    return Stream(url, api_key=api_key, token=token, open_timeout=open_timeout, **options)
