"""The listening sockets, and the loop that accepts from them.

asyncio's own accept loop, out of file descriptors (EMFILE), logs a traceback and schedules a
retry for each of up to `backlog` attempts in a row, every time the socket polls readable: the
event loop spins and the log fills (CPython 3.11; uvicorn's backlog is 2048). Here, a failed
accept gives up a spare descriptor to accept the waiting client and close it at once (it gets a
503 if its socket takes it), so clients are refused rather than left hanging, and says so in one
throttled log line; without even a spare, accepting pauses until one of our sockets closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
from collections.abc import Callable

import anyio
from anyio.abc import TaskGroup

from .guarded import BUSY_RESPONSE
from .table import ConnectionTable

logger = logging.getLogger(__name__)

OUT_OF_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
# Without a spare descriptor: how long accepting pauses when none of our sockets closes meanwhile
# (the descriptors may be held by something else: a provider's files, the thread pool).
RETRY_S = 1.0


def bind_listeners(host: str, port: int, backlog: int) -> list[socket.socket]:
    """Listening sockets for `host` (each address it resolves to, as asyncio's create_server binds
    them), non-blocking. Raises OSError when one cannot be bound."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    listening: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            listening.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
    except OSError:
        for sock in listening:
            sock.close()
        raise
    return listening


class Listener:
    def __init__(
        self, sockets: list[socket.socket], protocol_factory: Callable[[], asyncio.Protocol], table: ConnectionTable
    ) -> None:
        self.sockets = sockets
        self._protocol_factory = protocol_factory
        self._table = table
        self._spare: int | None = None

    async def serve(self) -> None:
        """Accept on every listening socket until cancelled; the sockets are closed then."""
        self._spare = _open_spare()
        try:
            async with anyio.create_task_group() as connecting:
                for sock in self.sockets:
                    connecting.start_soon(self._accept_from, sock, connecting, name=f"accept-{sock.fileno()}")
        finally:
            for sock in self.sockets:
                sock.close()
            if self._spare is not None:
                os.close(self._spare)
                self._spare = None

    async def _accept_from(self, listening: socket.socket, connecting: TaskGroup) -> None:
        while True:
            await anyio.wait_socket_readable(listening)
            while True:
                try:
                    sock, _ = listening.accept()
                except (BlockingIOError, InterruptedError):
                    break  # none waiting
                except ConnectionAbortedError:
                    continue
                except OSError as exc:
                    if exc.errno not in OUT_OF_DESCRIPTORS:
                        # A pending network error handed over by accept(2) (EPROTO, ENETDOWN,
                        # EHOSTUNREACH, EPERM from a firewall...): that client is lost, the
                        # listener is not. accept(2) says to retry, as asyncio's own loop does.
                        self._table.report("connection.accept_failed", errno=exc.errno)
                        continue
                    if self._refuse_one(listening):
                        continue
                    if self._spare is None:
                        # Nothing to refuse with: wait for a descriptor (bounded; it may not be ours).
                        with anyio.move_on_after(RETRY_S):
                            await self._table.wait_freed()
                        self._spare = _open_spare()
                    break
                else:
                    sock.setblocking(False)
                    connecting.start_soon(self._connect, sock)

    def _refuse_one(self, listening: socket.socket) -> bool:
        """Out of descriptors: accept one waiting client with the spare and close it at once.
        False when there was no spare, or no client waiting."""
        if self._spare is None:
            self._table.report("server.out_of_descriptors", refused="none: no spare descriptor")
            return False
        os.close(self._spare)
        self._spare = None
        try:
            sock, _ = listening.accept()
        except OSError:
            return False
        else:
            with contextlib.suppress(OSError):
                sock.setblocking(False)
                sock.send(BUSY_RESPONSE)
            sock.close()
            self._table.report("server.out_of_descriptors", refused="a new client, with 503")
            return True
        finally:
            self._spare = _open_spare()

    async def _connect(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(self._protocol_factory, sock)
        except OSError:
            sock.close()  # gone before its transport was made


def _open_spare() -> int | None:
    try:
        return os.open(os.devnull, os.O_RDONLY)
    except OSError:
        return None
