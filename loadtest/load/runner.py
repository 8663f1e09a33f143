"""N concurrent streams for a bounded time against one server: one level of a run, and its figures.

Each of the N slots opens a stream, sends one passage at the token rate, consumes the audio to the
end, and starts the next stream, until the level's duration is over (slots start spread over
`ramp_s`, so the first second is not a connection storm). Streams running at the deadline finish;
each is bounded by `stream_timeout_s`, so a level ends by `ramp_s + duration_s + stream_timeout_s`
at the latest, and it never starts more than `max_total_streams` streams.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from loadtest.ttfa import cpu_snapshot, other_cpu_pct

from .corpus import PassageSource
from .observer import StreamObserver, StreamRecord
from .playout import PlayoutClock
from .procstat import ProcessSampler, process_tree
from .spec import StreamSpec
from .sse_client import run_sse_stream
from .stats import summarize
from .ws_client import run_ws_stream

Transport = Literal["ws", "sse"]
Consume = Literal["fast", "player"]


@dataclass(frozen=True, slots=True)
class LevelConfig:
    base_http: str
    transport: Transport
    streams: int
    spec: StreamSpec
    duration_s: float = 10.0
    ramp_s: float = 2.0
    tokens_per_s: float = 40.0
    sentences_per_stream: int = 4
    consume: Consume = "player"
    jitter_buffer_ms: float = 100.0
    stream_timeout_s: float = 60.0
    max_total_streams: int = 100_000
    server_pid: int | None = None
    ws_compression: str | None = None

    @property
    def base_ws(self) -> str:
        return "ws" + self.base_http.removeprefix("http")

    def describe(self) -> dict[str, Any]:
        return {
            "transport": self.transport,
            "streams": self.streams,
            "duration_s": self.duration_s,
            "ramp_s": self.ramp_s,
            "tokens_per_s": self.tokens_per_s,
            "sentences_per_stream": self.sentences_per_stream,
            "consume": self.consume,
            "jitter_buffer_ms": self.jitter_buffer_ms if self.consume == "player" else None,
            "stream_timeout_s": self.stream_timeout_s,
            "ws_compression": self.ws_compression if self.transport == "ws" else None,
            **{f"stream_{k}": v for k, v in self.spec.config_fields().items()},
        }


@dataclass(slots=True)
class _Collected:
    records: list[StreamRecord] = field(default_factory=list)
    started: int = 0


async def _one_stream(config: LevelConfig, source: PassageSource, client: httpx.AsyncClient | None) -> StreamRecord:
    passage = source.take()
    player = PlayoutClock(config.jitter_buffer_ms) if config.consume == "player" else None
    observer = StreamObserver(passage.completing_index, passage.first_sentence, player)
    try:
        async with asyncio.timeout(config.stream_timeout_s):
            if config.transport == "ws":
                await run_ws_stream(
                    config.base_ws, config.spec, passage, config.tokens_per_s, observer, config.ws_compression
                )
            else:
                assert client is not None
                await run_sse_stream(client, config.spec, passage, config.tokens_per_s, observer)
    except TimeoutError:
        observer.error(f"stream timed out after {config.stream_timeout_s:.0f} s")
    return observer.record(expect_close_code=1000 if config.transport == "ws" else None)


async def _slot(
    index: int,
    config: LevelConfig,
    source: PassageSource,
    client: httpx.AsyncClient | None,
    deadline: float,
    collected: _Collected,
) -> None:
    loop = asyncio.get_running_loop()
    delay = config.ramp_s * index / max(1, config.streams)
    if delay > 0:
        await asyncio.sleep(delay)
    while loop.time() < deadline and collected.started < config.max_total_streams:
        collected.started += 1
        collected.records.append(await _one_stream(config, source, client))


async def run_level(config: LevelConfig, source: PassageSource) -> dict[str, Any]:
    """Run one level and return its figures (JSON-ready)."""
    loop = asyncio.get_running_loop()
    server = ProcessSampler(config.server_pid) if config.server_pid else None
    client_proc = ProcessSampler(os.getpid())
    for sampler in (server, client_proc):
        if sampler is not None:
            sampler.start()
    collected = _Collected()
    client: httpx.AsyncClient | None = None
    if config.transport == "sse":
        # Each stream holds one long GET and posts its text on another connection.
        limits = httpx.Limits(max_connections=2 * config.streams + 16, max_keepalive_connections=2 * config.streams)
        client = httpx.AsyncClient(
            base_url=config.base_http, limits=limits, timeout=httpx.Timeout(config.stream_timeout_s)
        )
    ours = {os.getpid(), *(process_tree(config.server_pid) if config.server_pid else [])}
    machine_before = cpu_snapshot(ours)
    started_wall = time.perf_counter()
    deadline = loop.time() + config.ramp_s + config.duration_s
    try:
        await asyncio.gather(*(_slot(i, config, source, client, deadline, collected) for i in range(config.streams)))
    finally:
        wall_s = time.perf_counter() - started_wall
        other_load = other_cpu_pct(machine_before, cpu_snapshot(ours))
        if client is not None:
            await client.aclose()
        for sampler in (server, client_proc):
            if sampler is not None:
                await sampler.stop()
    result = aggregate(config, collected.records, wall_s, server, client_proc)
    server_cpu_s = (result["server_process"] or {}).get("cpu_s")
    # What one frame costs the server, all included (I/O, pipeline, encoding, synthesis).
    result["server_cpu_us_per_frame"] = (
        round(server_cpu_s * 1e6 / result["frames"], 1) if server_cpu_s and result["frames"] else None
    )
    # Other processes' CPU meanwhile, % of all cores: a shared machine disturbs the figures.
    result["other_processes_cpu_pct"] = None if other_load is None else round(other_load, 1)
    return result


def aggregate(
    config: LevelConfig,
    records: list[StreamRecord],
    wall_s: float,
    server: ProcessSampler | None,
    client_proc: ProcessSampler | None,
) -> dict[str, Any]:
    ok = [r for r in records if r.ok]
    failed = [r for r in records if not r.ok]
    reasons = Counter(error for r in failed for error in r.errors[:1])
    frames = sum(r.frames for r in records)
    audio_ms = sum(r.audio_ms for r in records)
    player = config.consume == "player"
    underruns = sum(r.underruns or 0 for r in ok) if player else None
    return {
        "config": config.describe(),
        "wall_s": round(wall_s, 2),
        "streams_completed": len(ok),
        "streams_failed": len(failed),
        "errors": dict(reasons.most_common(10)),
        "ttfa_ms": summarize([r.ttfa_ms for r in ok if r.ttfa_ms is not None]),
        "ttfa_samples_ms": [round(r.ttfa_ms, 2) for r in ok if r.ttfa_ms is not None][:5000],
        "server_ttfa_ms": summarize([r.server_ttfa_ms for r in ok if r.server_ttfa_ms is not None]),
        "server_added_ms": summarize([r.server_added_ms for r in ok if r.server_added_ms is not None]),
        "segment_gap_ms": summarize([g for r in ok for g in r.gaps_ms]),
        "underruns": underruns,
        "streams_with_underruns": sum(1 for r in ok if r.underruns) if player else None,
        "stall_ms": summarize([r.stall_ms for r in ok if r.stall_ms]) if player else None,
        "rtf": summarize([r.rtf for r in ok if r.rtf is not None]),
        "audio_ms_per_stream": summarize([r.audio_ms for r in ok]),
        "frames": frames,
        "frames_per_s": round(frames / wall_s, 1) if wall_s > 0 else None,
        "audio_s_per_s": round(audio_ms / 1000.0 / wall_s, 2) if wall_s > 0 else None,
        "server_process": server.summary() if server is not None else None,
        "client_process": client_proc.summary() if client_proc is not None else None,
    }
