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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


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
    """Environment additions that make a server process import stream_server from `source`."""
    return {} if source is None else {"PYTHONPATH": str(source.resolve())}


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
