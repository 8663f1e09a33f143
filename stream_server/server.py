"""Running the app under uvicorn with the settings' network and protocol limits."""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from collections.abc import Mapping
from types import FrameType

import anyio
import uvicorn
from starlette.applications import Starlette
from uvicorn.config import STARTUP_FAILURE

from .app import create_app
from .connections import Listener, bind_listeners, guarded_http
from .logs import configure_logging, log_event
from .providers import Provider
from .security.access import Access
from .server_state import ServerState
from .settings import Settings
from .workers.handoff import Inherited

# Over our own message limit, so that an oversized message reaches the app and gets a proper
# `error` before the 1009 close; past this, the WebSocket layer closes with 1009 on its own.
WS_MAX_SIZE_FACTOR = 4
WS_MAX_SIZE_FLOOR = 1 << 20
# After the drain, connections get this long to close; a client that stopped reading cannot hold
# the process forever.
GRACEFUL_SHUTDOWN_S = 5

logger = logging.getLogger(__name__)


def uvicorn_config(
    settings: Settings, providers: Mapping[str, Provider] | None = None, *, owns_providers: bool = False
) -> uvicorn.Config:
    access = Access.from_settings(settings)  # reads the keys file
    return uvicorn.Config(
        create_app(settings, providers, owns_providers=owns_providers, access=access),
        host=settings.host,
        port=settings.port,
        log_config=configure_logging(settings.log_level),
        # Every socket counted and given its deadlines from accept to close (connections/): the
        # guard wraps h11's protocol, and follows it to the WebSocket protocol it hands over to.
        http=guarded_http(access.connections),  # type: ignore[arg-type]
        ws="websockets-sansio",
        ws_max_size=max(WS_MAX_SIZE_FACTOR * settings.max_message_bytes, WS_MAX_SIZE_FLOOR),
        # Encoded audio does not compress: deflating every frame (browsers and the websockets
        # library offer it by default) would cost CPU per frame and gain nothing.
        ws_per_message_deflate=False,
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )


class StreamServer(uvicorn.Server):
    """uvicorn, with a drain before the shutdown.

    The first SIGTERM (or Ctrl-C) does not stop the listener at once: `/readyz` fails, so a load
    balancer stops sending clients; new streams are refused (`shutting_down`); running streams get
    `--shutdown-grace-s` to finish, and those still open then are closed with an `error` and 1001.
    Only then does uvicorn shut down, and the process exits 0. A second signal skips the wait.
    """

    def __init__(self, config: uvicorn.Config, inherited: Inherited | None = None) -> None:
        """`inherited`: as a worker of `--workers`, the supervisor's listening sockets and link."""
        super().__init__(config)
        self._inherited = inherited
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain_asked: asyncio.Event | None = None
        self._listener: Listener | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._drain_asked = asyncio.Event()
        config = self.config
        if sockets is not None or config.fd is not None or config.uds is not None:
            await super().startup(sockets)  # handed sockets: asyncio accepts on them
            return
        # uvicorn's startup, but the accepting is ours (connections/listener.py: out of
        # descriptors, clients are refused, and the event loop does not spin).
        await self.lifespan.startup()
        if self.lifespan.should_exit:
            sys.exit(STARTUP_FAILURE)
        try:
            inherited = self._inherited
            listening = inherited.sockets if inherited else bind_listeners(config.host, config.port, config.backlog)
        except OSError as exc:
            logger.error(exc)
            await self.lifespan.shutdown()
            sys.exit(STARTUP_FAILURE)
        loop = self._loop

        def protocol() -> asyncio.Protocol:
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=self.server_state, app_state=self.lifespan.state, _loop=loop
            )

        self.servers = []
        self._listener = Listener(listening, protocol, self._state().access.connections)
        self._log_started_message(listening)
        self.started = True
        if self._inherited is not None:
            self._inherited.report_serving()

    async def main_loop(self) -> None:
        # The drain and the accepting belong to the serving loop: they run in its task group, and
        # end with it (so the listening sockets close before uvicorn's shutdown, as its own do).
        async with anyio.create_task_group() as serving:
            serving.start_soon(self._drain_when_asked, name="drain")
            if self._listener is not None:
                serving.start_soon(self._listener.serve, name="accept")
            if self._inherited is not None:
                serving.start_soon(self._drain_when_orphaned, name="supervisor-link")
            await super().main_loop()
            serving.cancel_scope.cancel()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._loop is None or self._drain_asked is None:
            super().handle_exit(sig, frame)  # not serving yet
            return
        if self._drain_asked.is_set() or self.should_exit:
            # Asked twice: stop now, and still exit 0 (uvicorn would re-raise a signal it recorded).
            if self.should_exit:
                self.force_exit = True
            else:
                self._loop.call_soon_threadsafe(self._say_exiting_now)
            self.should_exit = True
            return
        # A signal handler runs between two bytecodes of the loop: hand the work to the loop.
        self._loop.call_soon_threadsafe(self._drain_asked.set)

    async def _drain_when_orphaned(self) -> None:
        """A worker whose supervisor is gone (killed) drains and exits rather than serve unsupervised."""
        assert self._inherited is not None and self._drain_asked is not None
        await self._inherited.wait_supervisor_gone()
        log_event(logger, "worker.orphaned", level=logging.WARNING, worker=self._inherited.index)
        self._drain_asked.set()

    async def _drain_when_asked(self) -> None:
        assert self._drain_asked is not None
        await self._drain_asked.wait()
        state = self._state()
        grace_s = state.settings.shutdown_grace_s
        streams = len(state.streams)
        # Whoever pressed Ctrl-C is told why the process has not exited, and how to make it.
        _tell(
            f"draining: new streams are refused; {streams} open stream{'' if streams == 1 else 's'} "
            f"get up to {grace_s:g} s to finish (--shutdown-grace-s). Press Ctrl-C again to exit now."
        )
        log_event(logger, "server.draining", streams=streams, grace_s=grace_s, second_signal="exits now")
        stopped = await state.admission.drain(grace_s)
        closed = await state.admission.wait_all_closed(GRACEFUL_SHUTDOWN_S)
        log_event(logger, "server.drained", stopped=stopped, streams_left=0 if closed else len(state.streams))
        self.should_exit = True

    def _say_exiting_now(self) -> None:
        streams = len(self._state().streams)
        _tell(f"exiting now: {streams} open stream{'' if streams == 1 else 's'} cut off (WebSockets get close 1012).")
        log_event(logger, "server.exit_now", streams=streams)

    def _state(self) -> ServerState:
        app = self.config.app
        assert isinstance(app, Starlette)  # uvicorn_config's
        return app.state.server


def _tell(message: str) -> None:
    """A plain line for the person at the terminal, besides the JSON log on the same stderr."""
    print(f"stream_server: {message}", file=sys.stderr, flush=True)
