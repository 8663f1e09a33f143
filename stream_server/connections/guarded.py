"""One accepted socket, between the event loop's transport and uvicorn's protocol for it.

`GuardedConnection` is the transport's protocol: it counts the socket in the table from
`connection_made` to `connection_lost`, and passes every event on to uvicorn's protocol, which
sees the socket through `_Transport`. That proxy counts the bytes written, and follows uvicorn's
switch from HTTP to WebSocket (`set_protocol`), so one guard covers a socket for its whole life.
The table's watch asks each guard for its deadlines (`check`); a missed one resets the socket,
which drops whatever it still had to send.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
from collections.abc import Callable
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from .deadlines import ConnectionDeadlines, Expired
from .table import ConnectionTable

_BUSY_BODY = json.dumps(
    {"error": {"code": "server_busy", "message": "the server has all the connections it takes; retry later"}}
).encode()
BUSY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY)
)
"""What a socket past the hard cap gets, whatever it asked (its request is not read)."""


def guarded_http(table: ConnectionTable) -> Callable[..., asyncio.Protocol]:
    """uvicorn's `http` protocol factory: h11 (whose state tells whether a request head is still
    being read), each connection guarded."""

    def make(**uvicorn_args: Any) -> asyncio.Protocol:
        return GuardedConnection(table, H11Protocol(**uvicorn_args))

    return make


class GuardedConnection(asyncio.Protocol):
    def __init__(self, table: ConnectionTable, inner: asyncio.Protocol) -> None:
        self._table = table
        self._inner = inner
        self._transport: asyncio.Transport | None = None
        self._deadlines = ConnectionDeadlines(table.limits, table.now())
        self.written = 0

    # -- the event loop's side --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        if not self._table.admit(self):
            self.written += len(BUSY_RESPONSE)
            transport.write(BUSY_RESPONSE)
            transport.close()
            self._inner = asyncio.Protocol()  # uvicorn never sees this socket
            return
        self._inner.connection_made(_Transport(transport, self))

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)
        now = self._table.now()
        self._deadlines.head(_awaiting_head(self._inner), now)
        self._deadlines.body(_awaiting_body(self._inner), now, arrived=True)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._table.discard(self)
        self._inner.connection_lost(exc)

    # -- the table's side -------------------------------------------------------------------------

    def check(self, now: float) -> Expired | None:
        transport = self._transport
        if transport is None:
            return None
        expired = self._deadlines.expired(
            now,
            awaiting_head=_awaiting_head(self._inner),
            awaiting_body=_awaiting_body(self._inner),
            written=self.written,
            buffered=transport.get_write_buffer_size(),
        )
        if expired is not None:
            _reset(transport)
        return expired

    # -- the proxy's side -------------------------------------------------------------------------

    def switch_to(self, protocol: asyncio.BaseProtocol) -> None:
        assert isinstance(protocol, asyncio.Protocol)
        self._inner = protocol

    @property
    def inner(self) -> asyncio.Protocol:
        return self._inner


def _reset(transport: asyncio.Transport) -> None:
    """Close at once, dropping the unsent bytes, the kernel's too: a plain close would leave the
    kernel sending its buffer (megabytes) to a client that reads nothing, for minutes. With a zero
    linger the close is a reset; connection_lost follows."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def _awaiting_head(protocol: asyncio.Protocol) -> bool:
    """Whether the connection is between requests or inside a request's head: h11 says IDLE until
    a whole head has arrived. A WebSocket (after the handshake) never is."""
    return isinstance(protocol, H11Protocol) and protocol.conn.their_state is h11.IDLE


def _awaiting_body(protocol: asyncio.Protocol) -> bool:
    """Whether a request's body is still coming and the server has not begun its answer: a JSON
    body is read whole before the answer, so a body that stops there holds the socket for
    nothing. (A text body streamed to /v1/tts/stream is answered while it comes: the stream's
    own idle deadline governs it.)"""
    if not isinstance(protocol, H11Protocol):
        return False
    conn = protocol.conn
    return conn.their_state is h11.SEND_BODY and conn.our_state in (h11.IDLE, h11.SEND_RESPONSE)


class _Transport(asyncio.Transport):
    """The socket's transport as uvicorn's protocols see it: the real one, with the bytes written
    counted and a protocol switch routed through the guard."""

    def __init__(self, transport: asyncio.Transport, guard: GuardedConnection) -> None:
        super().__init__()
        self._real = transport
        self._guard = guard

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._guard.written += len(data)
        self._real.write(data)

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._guard.switch_to(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._guard.inner

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._real.get_extra_info(name, default)

    def is_closing(self) -> bool:
        return self._real.is_closing()

    def close(self) -> None:
        self._real.close()

    def abort(self) -> None:
        self._real.abort()

    def write_eof(self) -> None:
        self._real.write_eof()

    def can_write_eof(self) -> bool:
        return self._real.can_write_eof()

    def is_reading(self) -> bool:
        return self._real.is_reading()

    def pause_reading(self) -> None:
        self._real.pause_reading()

    def resume_reading(self) -> None:
        self._real.resume_reading()

    def get_write_buffer_size(self) -> int:
        return self._real.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._real.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._real.set_write_buffer_limits(high, low)
