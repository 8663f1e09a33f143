"""The Wyoming listener (`--wyoming-uri`): accepts connections for as long as the app runs.

Entered as an async context manager by the app's lifespan, which owns it: its task group holds
the accept loop and one task per connection, and leaving it cancels them all (the shutdown drain
has given their streams time to finish first, like every other stream). Each connection is
checked before it is served: its address against `--wyoming-allow`, and the server's
`--max-connections`, shared with HTTP and WebSocket clients.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from contextlib import AsyncExitStack
from typing import Self

import anyio
import anyio.abc
from anyio.abc import SocketAttribute

from ...logs import log_event
from ...protocol import ErrorCode
from ...server_state import ServerState
from .connection import REPLY_TIMEOUT_S, WyomingConnection
from .conversation import error_event
from .discovery import announced
from .endpoint import Address, TcpAddress, UnixAddress, allowed_networks, check_wyoming_settings, peer_allowed
from .framing import encode_event
from .voices import Voices

logger = logging.getLogger(__name__)

FORBIDDEN_ADDRESS = "forbidden_address"
"""The client's address is outside `--wyoming-allow`; the connection is closed."""


class WyomingListener:
    def __init__(self, state: ServerState) -> None:
        settings = state.settings
        address = check_wyoming_settings(settings)
        assert address is not None, "WyomingListener without --wyoming-uri"
        self._state = state
        self._address: Address = address
        self._networks = allowed_networks(settings)
        self._open_to_all = settings.insecure_wyoming_open
        self._voices = Voices(state.providers, settings.provider, settings.voice)
        self._exit = AsyncExitStack()
        self.bound: Address = address
        """Where it listens (a tcp port 0 replaced by the port it got)."""

    async def __aenter__(self) -> Self:
        async with AsyncExitStack() as stack:
            listener = await self._listen()
            stack.push_async_callback(self._close, listener)
            tasks = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(tasks.cancel_scope.cancel)  # runs first on the way out: the tasks end
            tasks.start_soon(listener.serve, self._serve, tasks, name="wyoming-accept")
            if self._state.settings.wyoming_zeroconf and isinstance(self.bound, TcpAddress):
                await stack.enter_async_context(announced(self.bound))
            log_event(logger, "wyoming.listening", uri=_uri(self.bound), voices=sum(1 for _ in self._voices))
            self._exit = stack.pop_all()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._exit.aclose()

    async def _listen(self) -> anyio.abc.Listener[anyio.abc.SocketStream]:
        address = self._address
        if isinstance(address, UnixAddress):
            _remove_stale_socket(address.path)
            return await anyio.create_unix_listener(address.path)
        listener = await anyio.create_tcp_listener(local_host=address.host, local_port=address.port)
        self.bound = TcpAddress(address.host, listener.extra(SocketAttribute.local_port))
        return listener

    async def _close(self, listener: anyio.abc.Listener[anyio.abc.SocketStream]) -> None:
        await listener.aclose()
        if isinstance(self._address, UnixAddress):
            with contextlib.suppress(OSError):
                os.unlink(self._address.path)

    async def _serve(self, client: anyio.abc.SocketStream) -> None:
        async with client:
            peer = _peer_host(client)
            label = peer or "unix"
            if not peer_allowed(peer, self._networks, self._open_to_all):
                log_event(logger, "wyoming.refused", level=logging.WARNING, peer=label, code=FORBIDDEN_ADDRESS)
                await _goodbye(client, FORBIDDEN_ADDRESS, f"{label} is not in --wyoming-allow")
                return
            table = self._state.access.connections
            counted = _CountedSocket()
            try:
                # Counted toward --max-connections like every HTTP socket (connections/).
                if not table.admit(counted) or table.over_capacity:
                    log_event(logger, "wyoming.refused", level=logging.WARNING, peer=label, code=ErrorCode.SERVER_BUSY)
                    busy = "the server has all the connections it takes; retry later"
                    await _goodbye(client, ErrorCode.SERVER_BUSY, busy)
                    return
                await WyomingConnection(self._state, self._voices, client, label).run()
            except Exception as exc:  # noqa: BLE001 - one connection's bug must not end the listener
                log_event(logger, "wyoming.connection_failed", level=logging.ERROR, peer=label, error=repr(exc))
            finally:
                table.discard(counted)


class _CountedSocket:
    """A Wyoming socket in the server's connection table. Its deadlines are the connection's own
    (the idle timeout between requests, the write timeout on every send), so the table's watch
    has nothing to check."""

    def check(self, now: float) -> None:
        return None


async def _goodbye(client: anyio.abc.SocketStream, code: str, message: str) -> None:
    with contextlib.suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
        with anyio.move_on_after(REPLY_TIMEOUT_S):
            await client.send(encode_event(error_event(code, message)))


def _peer_host(client: anyio.abc.SocketStream) -> str | None:
    remote = client.extra(SocketAttribute.remote_address, None)
    return remote[0] if isinstance(remote, tuple) else None


def _remove_stale_socket(path: str) -> None:
    """A socket file left by a server that did not exit cleanly would stop this one from binding."""
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)


def _uri(address: Address) -> str:
    return f"unix://{address.path}" if isinstance(address, UnixAddress) else f"tcp://{address.host}:{address.port}"


def wyoming_listener(state: ServerState) -> contextlib.AbstractAsyncContextManager[WyomingListener | None]:
    """The listener when `--wyoming-uri` is set; otherwise nothing."""
    if state.settings.wyoming_uri is None:
        return contextlib.nullcontext()
    return WyomingListener(state)
