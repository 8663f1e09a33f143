"""CPU and RSS of one process (all its threads) and its children (a `--workers` server's workers),
read from /proc. Linux only; elsewhere: no figures."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
MAX_SAMPLES = 20_000  # a run is bounded in time; this bounds the list anyway


@dataclass(frozen=True, slots=True)
class ProcSample:
    at: float
    """time.monotonic()"""
    cpu_s: float
    """user + system CPU time so far, all threads."""
    rss_bytes: int


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants now (a worker that exited, and the CPU it used, are not counted)."""
    tree, index = [pid], 0
    while index < len(tree):
        try:
            children = Path(f"/proc/{tree[index]}/task/{tree[index]}/children").read_text().split()
        except OSError:
            children = []
        tree += [int(child) for child in children]
        index += 1
    return tree


def read_sample(pid: int) -> ProcSample | None:
    """One reading of `pid` and its descendants, summed; None if it is gone (or this is not Linux)."""
    samples = [sample for member in process_tree(pid) if (sample := _read_one(member)) is not None]
    if not samples or samples[0].at < 0:
        return None
    return ProcSample(
        samples[0].at, sum(sample.cpu_s for sample in samples), sum(sample.rss_bytes for sample in samples)
    )


def _read_one(pid: int) -> ProcSample | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # after "(comm)", which may hold spaces
    cpu_ticks = int(fields[11]) + int(fields[12])  # utime, stime
    rss_kib = 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            rss_kib = int(line.split()[1])
            break
    return ProcSample(time.monotonic(), cpu_ticks / _CLOCK_TICKS, rss_kib * 1024)


@dataclass(slots=True)
class ProcessSampler:
    """Samples a process every `interval_s` while running (an asyncio task); summarizes after."""

    pid: int
    interval_s: float = 0.5
    samples: list[ProcSample] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._take()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._take()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            self._take()

    def _take(self) -> None:
        sample = read_sample(self.pid)
        if sample is not None and len(self.samples) < MAX_SAMPLES:
            self.samples.append(sample)

    def summary(self) -> dict[str, Any]:
        """CPU as % of one core (200 = two cores busy), mean over the run and peak over a sample
        interval; RSS at start, peak, end, in MiB."""
        if len(self.samples) < 2:
            return {"pid": self.pid, "available": False}
        first, last = self.samples[0], self.samples[-1]
        span = last.at - first.at
        rates = [
            100.0 * (b.cpu_s - a.cpu_s) / (b.at - a.at)
            for a, b in zip(self.samples, self.samples[1:], strict=False)
            if b.at > a.at
        ]
        mib = 1024 * 1024
        return {
            "pid": self.pid,
            "available": True,
            "cpu_pct_mean": round(100.0 * (last.cpu_s - first.cpu_s) / span, 1) if span > 0 else None,
            "cpu_pct_peak": round(max(rates), 1) if rates else None,
            "cpu_s": round(last.cpu_s - first.cpu_s, 2),
            "rss_mib_start": round(first.rss_bytes / mib, 1),
            "rss_mib_peak": round(max(s.rss_bytes for s in self.samples) / mib, 1),
            "rss_mib_end": round(last.rss_bytes / mib, 1),
        }
