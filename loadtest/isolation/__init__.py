"""`python -m loadtest isolation`: can one user starve, stall or exhaust the server for the others?

Each module here measures one family of the attacks in the isolation issue against real
`python -m stream_server` processes on loopback, as a user inside the documented limits would make
them, and returns its figures as `Figure` rows. Every module runs alone too
(`python -m loadtest.isolation.<module> [--server-source DIR]`).

`--server-source DIR` runs the servers from another checkout of the repository (its directory goes
first on the server's PYTHONPATH), which is how the "before" figures of a change are taken with
the same load generator.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from loadtest.ttfa import RESULTS_DIR, BenchmarkError, ManagedProcess, free_port


@dataclass(frozen=True, slots=True)
class Figure:
    scenario: str
    """What was done, e.g. "alice: 10 unread SSE sessions on openai (concurrency 8)"."""
    measure: str
    """What was measured, e.g. "bob's first audio, s (p50 of 5)"."""
    value: str
    wanted: str = ""
    """The issue's bound, e.g. "<= 1 s"; empty where there is none."""


def server_env(source: Path | None) -> dict[str, str]:
    """Environment additions that make a server process import stream_server from `source`.

    PYTHONSAFEPATH: `python -m` would otherwise put the working directory (this checkout) first
    on the path, ahead of PYTHONPATH."""
    return {} if source is None else {"PYTHONPATH": str(source.resolve()), "PYTHONSAFEPATH": "1"}


def markdown(figures: Sequence[Figure]) -> str:
    lines = ["| scenario | measure | value | wanted |", "| --- | --- | ---: | ---: |"]
    lines += [f"| {f.scenario} | {f.measure} | {f.value} | {f.wanted} |" for f in figures]
    return "\n".join(lines)


def parser(description: str | None) -> argparse.ArgumentParser:
    """The options every isolation module takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--server-source",
        type=Path,
        default=None,
        help="run the servers from this checkout of the repository (for before/after figures)",
    )
    return parser


def environment(extra: Mapping[str, str] | None, source: Path | None) -> dict[str, str]:
    return {**(extra or {}), **server_env(source)}


@contextmanager
def emulator(kind: str, log_path: Path, *options: str) -> Iterator[str]:
    """A cloud provider emulator process (`python -m loadtest.emulators KIND`) on a free loopback
    port, stopped on exit; yields its base URL once it accepts connections."""
    port = free_port()
    argv = [sys.executable, "-m", "loadtest.emulators", kind, "--port", str(port), *options]
    with ManagedProcess(f"{kind}-emulator", argv, log_path) as process:
        deadline = time.monotonic() + 30
        while True:
            if (code := process.returncode()) is not None:
                raise BenchmarkError(f"the {kind} emulator exited with {code}:\n{process.log_tail()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise BenchmarkError(f"the {kind} emulator did not listen on {port}") from None
                time.sleep(0.05)  # polling a port that is not open yet
        yield f"http://127.0.0.1:{port}"


def rss_mib(pid: int) -> float:
    """Resident memory of a process (Linux /proc), in MiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise BenchmarkError(f"no VmRSS for {pid}")


def log_path(name: str) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    return RESULTS_DIR / f"isolation-{time.strftime('%Y%m%d-%H%M%S')}-{name}.log"
