"""The supervisor of `--workers N`: one port, N server processes, restarts, and the drain.

Why the supervisor binds and the workers inherit the socket, rather than each worker binding with
SO_REUSEPORT: the listening socket's queue belongs to the socket, which the supervisor holds for
the whole run, so a worker that crashes loses no client still waiting to be accepted (with
SO_REUSEPORT the kernel resets those queued on the dead worker's socket), the port stays bound
while a worker restarts, `--port 0` means one port for all, and a port in use is reported once.
Every worker accepts from the shared queue with our own accept loop (connections/listener.py),
whichever is free first, so a worker whose event loop is busy takes fewer new clients instead of
an equal hash share; no other process can join the port's group as it could with SO_REUSEPORT.

Signals: the first SIGTERM (or Ctrl-C) is forwarded to every worker, each drains as a single
server does (`/readyz` fails, streams get --shutdown-grace-s), and the supervisor exits 0 once all
have exited 0; a second signal is forwarded too (the workers exit at once); a third kills them.
Workers run in their own session, so a Ctrl-C at the terminal reaches only the supervisor.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence

import anyio
from anyio.abc import Process
from prometheus_client import multiprocess

from ..connections import bind_listeners
from ..logs import log_event
from ..settings import Settings
from .handoff import WORKER_ENV, worker_env_value
from .restarts import GiveUp, RestartPolicy, describe_status

logger = logging.getLogger(__name__)

BACKLOG = 2048  # uvicorn's default, which a single server listens with
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


PIPER_THREADS_ENV = "STREAM_SERVER_PIPER_INTRA_OP_THREADS"


def shared_cores_env(settings: Settings, cores: int) -> dict[str, str]:
    """What a worker is told so that N workers share the cores instead of each taking all of them:
    Piper's ONNX Runtime threads per inference, left at "one per core" (0), become cores / N (an
    option given on the command line still wins over this variable)."""
    if "piper" not in settings.providers or settings.provider_settings("piper").intra_op_threads != 0:  # type: ignore[attr-defined]
        return {}
    return {PIPER_THREADS_ENV: str(max(1, cores // settings.workers))}


class Supervisor:
    def __init__(self, settings: Settings, argv: Sequence[str], policy: RestartPolicy | None = None) -> None:
        self._settings = settings
        self._argv = list(argv)
        self._policy = policy or RestartPolicy()
        self._workers: dict[int, Process] = {}
        self._stopping = anyio.Event()
        self._signals_seen = 0
        self._failure: str | None = None
        self._unclean: list[str] = []

    async def run(self) -> int:
        settings = self._settings
        try:
            listening = bind_listeners(settings.host, settings.port, BACKLOG)
        except OSError as exc:
            _tell(f"cannot listen on {settings.host}:{settings.port}: {exc}")
            return 1
        # /metrics of every worker sums what they all wrote here (prometheus-client's multiprocess
        # mode): a fresh directory for this run, gone with it.
        metrics_dir = tempfile.mkdtemp(prefix="stream-server-metrics-")
        port = listening[0].getsockname()[1]
        try:
            with anyio.open_signal_receiver(*STOP_SIGNALS) as signals:
                log_event(logger, "workers.starting", workers=settings.workers, port=port)
                async with anyio.create_task_group() as supervising:
                    supervising.start_soon(self._forward_signals, signals)
                    async with anyio.create_task_group() as slots:
                        for index in range(settings.workers):
                            slots.start_soon(self._keep_running, index, listening, metrics_dir)
                    supervising.cancel_scope.cancel()
        finally:
            for sock in listening:
                sock.close()
            shutil.rmtree(metrics_dir, ignore_errors=True)
        if self._failure is not None:
            _tell(f"stopped: {self._failure}")
            log_event(logger, "workers.gave_up", level=logging.ERROR, reason=self._failure)
            return 1
        log_event(logger, "workers.stopped", unclean=self._unclean)
        return 1 if self._unclean else 0

    # -- one worker slot ---------------------------------------------------------------------------

    async def _keep_running(self, index: int, listening: list[socket.socket], metrics_dir: str) -> None:
        while not self._stopping.is_set():
            status, served, ran_s, pid = await self._run_worker(index, listening, metrics_dir)
            if self._stopping.is_set():
                # Drained, or told to exit now: 0 either way. One killed by our SIGTERM before it
                # could drain (still loading) had nothing to drain.
                if status != 0 and not (status == -signal.SIGTERM and not served):
                    self._unclean.append(f"worker {index} (pid {pid}): {describe_status(status)}")
                return
            decision = self._policy.exited(index, status=status, served=served, ran_s=ran_s)
            if isinstance(decision, GiveUp):
                self._failure = decision.reason
                self._stop()
                return
            _tell(f"worker {index} (pid {pid}) {describe_status(status)}; restarting in {decision.delay_s:g} s")
            log_event(
                logger, "worker.restarting", level=logging.WARNING, worker=index, pid=pid,
                status=describe_status(status), served=served, delay_s=decision.delay_s,
            )  # fmt: skip
            with anyio.move_on_after(decision.delay_s):
                await self._stopping.wait()

    async def _run_worker(
        self, index: int, listening: list[socket.socket], metrics_dir: str
    ) -> tuple[int, bool, float, int]:
        """Start worker `index`, wait until it exits: (status, whether it served, seconds it ran, pid)."""
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        env[WORKER_ENV] = worker_env_value(index, [s.fileno() for s in listening], theirs.fileno())
        env[METRICS_DIR_ENV] = metrics_dir
        env.update(shared_cores_env(self._settings, os.cpu_count() or 1))
        started = time.monotonic()
        served = False
        try:
            process = await anyio.open_process(
                [sys.executable, "-m", "stream_server", *self._argv],
                stdin=None, stdout=None, stderr=None, env=env,
                pass_fds=[*(s.fileno() for s in listening), theirs.fileno()],
                start_new_session=True,
            )  # fmt: skip
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._workers[index] = process
        log_event(logger, "worker.started", worker=index, pid=process.pid)
        if self._stopping.is_set():  # a signal came while it was being started
            process.send_signal(signal.SIGTERM)

        async def wait_serving() -> None:
            nonlocal served, started
            await anyio.wait_socket_readable(ours)
            if ours.recv(64):
                served, started = True, time.monotonic()
                log_event(logger, "worker.serving", worker=index, pid=process.pid)

        try:
            async with anyio.create_task_group() as watching:
                watching.start_soon(wait_serving)
                status = await process.wait()
                watching.cancel_scope.cancel()
        finally:
            ours.close()
            self._workers.pop(index, None)
            # Its live gauges (open streams) no longer count; its counters still do.
            multiprocess.mark_process_dead(process.pid, metrics_dir)
            await process.aclose()
        log_event(logger, "worker.exited", worker=index, pid=process.pid, status=describe_status(status), served=served)
        return status, served, time.monotonic() - started, process.pid

    # -- signals -----------------------------------------------------------------------------------

    async def _forward_signals(self, signals: AsyncIterator[int]) -> None:
        async for signum in signals:
            self._signals_seen += 1
            if self._signals_seen == 1:
                _tell(
                    f"draining {len(self._workers)} workers ({signal.Signals(signum).name}): each gets up to "
                    f"{self._settings.shutdown_grace_s:g} s (--shutdown-grace-s). Press Ctrl-C again to exit now."
                )
                log_event(logger, "workers.draining", workers=len(self._workers), signal=signal.Signals(signum).name)
                self._stop()
            elif self._signals_seen == 2:
                _tell("exiting now: the workers cut their streams off.")
                self._signal_all(signal.SIGTERM)
            else:
                self._signal_all(signal.SIGKILL)

    def _stop(self) -> None:
        """No more restarts; every worker drains."""
        self._stopping.set()
        self._signal_all(signal.SIGTERM)

    def _signal_all(self, signum: int) -> None:
        for process in list(self._workers.values()):
            if process.returncode is None:
                try:
                    process.send_signal(signum)
                except ProcessLookupError:
                    pass


def run_supervisor(settings: Settings, argv: Sequence[str]) -> int:
    return anyio.run(Supervisor(settings, argv).run)


def _tell(message: str) -> None:
    print(f"stream_server: {message}", file=sys.stderr, flush=True)
