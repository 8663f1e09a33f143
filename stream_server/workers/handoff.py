"""A worker's side of `--workers`: the listening sockets it inherits, and its link to the supervisor.

The supervisor binds the port once and passes the listening sockets to every worker (their
descriptors, named in `WORKER_ENV`); each worker runs our own accept loop on them
(connections/listener.py), so what that loop does out of descriptors holds per worker. The link is
one end of a socket pair: the worker writes on it once it serves (so the supervisor can tell a
crash at start-up from a crash later), and reads its end of file when the supervisor is gone
(killed with SIGKILL, say): the worker then drains and exits instead of serving orphaned.
"""

from __future__ import annotations

import os
import socket
from collections.abc import MutableMapping
from dataclasses import dataclass

import anyio

# Internal: not a setting (no STREAM_SERVER_ prefix), set by the supervisor for its workers only.
WORKER_ENV = "_STREAM_SERVER_WORKER"
SERVING = b"serving\n"


def worker_env_value(index: int, listening: list[int], link: int) -> str:
    return f"{index}:{','.join(map(str, listening))}:{link}"


@dataclass
class Inherited:
    index: int
    sockets: list[socket.socket]
    link: socket.socket

    @classmethod
    def from_environ(cls, environ: MutableMapping[str, str] | None = None) -> Inherited | None:
        """The handoff, when this process is a worker; taken out of the environment (a process
        this one starts is not a worker)."""
        environ = os.environ if environ is None else environ
        value = environ.pop(WORKER_ENV, None)
        if value is None:
            return None
        index, listening, link = value.split(":")
        sockets = [socket.socket(fileno=int(fd)) for fd in listening.split(",")]
        for sock in sockets:
            sock.setblocking(False)
        return cls(int(index), sockets, socket.socket(fileno=int(link)))

    def report_serving(self) -> None:
        try:
            self.link.sendall(SERVING)
        except OSError:
            pass  # the supervisor is gone: wait_supervisor_gone says so

    async def wait_supervisor_gone(self) -> None:
        """Return once the supervisor's end of the link is closed (it exited, or was killed)."""
        self.link.setblocking(False)
        while True:
            await anyio.wait_socket_readable(self.link)
            try:
                if not self.link.recv(64):
                    return
            except BlockingIOError:
                continue
            except OSError:
                return
