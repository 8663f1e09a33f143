"""Starting `python -m stream_server` for a run, and waiting until it is idle between levels."""

from __future__ import annotations

import shlex
import socket
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from loadtest.ttfa import ManagedProcess, free_port, wait_until_up


@dataclass(frozen=True, slots=True)
class StartedServer:
    base_http: str
    pid: int
    command: str
    log_path: Path


def server_argv(port: int, providers: Sequence[str], max_streams: int, extra: Sequence[str]) -> list[str]:
    return [
        sys.executable, "-m", "stream_server", "--host", "127.0.0.1", "--port", str(port),
        *(arg for name in providers for arg in ("--providers", name)),
        "--provider", providers[0],
        # Room for every stream of the run (the defaults would refuse them with server_busy).
        "--max-streams", str(max_streams), "--max-connections", str(max(1000, 3 * max_streams)),
        # Stopping it must not wait for streams to drain.
        "--shutdown-grace-s", "0",
        "--log-level", "warning",
        *extra,
    ]  # fmt: skip


@contextmanager
def our_server(
    providers: Sequence[str],
    max_streams: int,
    log_path: Path,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    startup_timeout_s: float = 120.0,
) -> Iterator[StartedServer]:
    """A stream_server process on a free loopback port, stopped (its whole group) on exit."""
    port = free_port()
    argv = server_argv(port, providers, max_streams, extra_args)
    # `env` execs the server in place (same pid, for /proc) with these variables added.
    prefix = ["env", *(f"{k}={v}" for k, v in (env or {}).items())] if env else []
    with ManagedProcess("stream_server", [*prefix, *argv], log_path) as process:
        base = f"http://127.0.0.1:{port}"
        wait_until_up(f"{base}/readyz", process, startup_timeout_s)
        yield StartedServer(base, process.pid, shlex.join(argv), log_path)


@contextmanager
def redis_for_workers(workers: int) -> Iterator[list[str]]:
    """The options a `--workers` server needs: more than one needs a Redis (a redis-server of its
    own on a free loopback port, stopped on exit); one needs none."""
    if workers <= 1:
        yield []
        return
    port = free_port()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    with ManagedProcess("redis-server", command, Path(tempfile.gettempdir()) / f"loadtest-redis-{port}.log"):
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start (apt-get install redis-server)") from None
                time.sleep(0.05)
        yield ["--workers", str(workers), "--redis-url", f"redis://127.0.0.1:{port}/0"]


def wait_idle(base_http: str, timeout_s: float = 30.0) -> int:
    """Poll /metrics until the server (every worker of it) has no open stream (bounded); return
    the streams left."""
    deadline = time.monotonic() + timeout_s
    streams = -1
    while time.monotonic() < deadline:
        try:
            text = httpx.get(f"{base_http}/metrics", timeout=5.0).text
            streams = int(
                sum(
                    sample.value
                    for family in text_string_to_metric_families(text)
                    for sample in family.samples
                    if sample.name == "tts_active_streams"
                )
            )
        except (httpx.HTTPError, ValueError):
            streams = -1
        if streams == 0:
            return 0
        time.sleep(0.2)
    return streams
