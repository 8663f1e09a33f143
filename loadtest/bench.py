"""`python -m loadtest bench`: the standard suite; writes BENCHMARKS.md (and a JSON of every figure).

Sections (each starts its own servers, on loopback, one at a time, and stops them):

- overhead: `tone` (synthesis is instant, so TTFA is what the server adds), 1 / 50 / 200
  concurrent real-time streams over the WebSocket, opus 48 kHz and pcm 16 kHz;
- capacity: the most concurrent real-time streams with no underrun, no failed stream and p99 TTFA
  under 250 ms, stepping N up (then one step of bisection), opus 48 kHz and pcm 16 kHz, `tone`;
- cloud: the OpenAI emulator (150 ms to first byte) behind the server: what the server adds, p50/p99;
- piper: TTFA and real-time factor of 1, 2 and 4 concurrent Piper streams;
- peers: one five-sentence paragraph, 1 and 4 concurrent clients: ours (over the WebSocket and
  over Wyoming), Piper's own HTTP server, wyoming-piper;
- memory: server RSS per idle connection and per active stream.

Bounded: every level has a fixed duration, every stream a timeout, every step list an end; the
whole suite takes about 12-15 minutes on 2 cores (`--quick`: about 2, for trying it out).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from loadtest.load.benchmarks_md import TARGETS, render_benchmarks_md
from loadtest.load.cli import run_levels
from loadtest.load.corpus import PassageSource
from loadtest.load.idle import idle_connections
from loadtest.load.peers import (
    measure,
    ours_first_audio_ms,
    piper_http_first_audio_ms,
    piper_http_server,
    wait_tcp,
    wyoming_first_audio_ms,
    wyoming_piper_server,
)
from loadtest.load.procstat import read_sample
from loadtest.load.runner import LevelConfig, run_level
from loadtest.load.server import StartedServer, our_server, redis_for_workers, wait_idle
from loadtest.load.spec import StreamSpec
from loadtest.ttfa import REPO_ROOT, RESULTS_DIR, ManagedProcess, free_port, loadavg, machine_info, stop_on_signals

SECTIONS = ("overhead", "capacity", "cloud", "piper", "peers", "memory")
OPUS = StreamSpec(provider="tone", format="opus")
PCM16 = StreamSpec(provider="tone", format="pcm", sample_rate=16000)
CAPACITY_STEPS = {"opus": (50, 100, 150, 200, 250, 300, 400), "pcm": (100, 200, 300, 400, 500, 600, 800)}
CAPACITY_TTFA_P99_MS = 250.0
MIB = 1024 * 1024


class Suite:
    def __init__(self, args: argparse.Namespace, stamp: str) -> None:
        self.args = args
        self.stamp = stamp
        self.quick: bool = args.quick
        self.results: dict[str, Any] = {}
        self.failed: dict[str, str] = {}

    # -- helpers ------------------------------------------------------------------------------

    def log_path(self, name: str) -> Path:
        return RESULTS_DIR / f"bench-{self.stamp}.{name}.log"

    def duration(self, full: float, quick: float) -> float:
        return quick if self.quick else full

    def level(self, server: StartedServer, spec: StreamSpec, streams: int, **overrides: Any) -> LevelConfig:
        base = LevelConfig(
            base_http=server.base_http,
            transport="ws",
            streams=streams,
            spec=spec,
            duration_s=self.duration(10.0, 3.0),
            ramp_s=max(1.0, streams / 100.0),
            tokens_per_s=40.0,
            sentences_per_stream=4,
            consume="player",
            jitter_buffer_ms=100.0,
            stream_timeout_s=60.0,
            server_pid=server.pid,
        )
        return replace(base, **overrides)

    def guarded(self, name: str, step: Callable[[], None]) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {name}", file=sys.stderr, flush=True)
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - one section's failure is reported; the others run
            print(f"  {name} FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
            self.failed[name] = f"{type(exc).__name__}: {exc}"

    # -- sections -----------------------------------------------------------------------------

    def overhead(self) -> None:
        levels: list[dict[str, Any]] = []
        with redis_for_workers(self.args.workers) as cluster, our_server(
            ["tone"], 1000, self.log_path("overhead"), cluster
        ) as server:
            self.results["overhead_server"] = server.command
            for spec in (OPUS, PCM16):
                configs = [self.level(server, spec, n) for n in ((1, 50, 200) if not self.quick else (1, 10))]
                # The same over SSE sessions (unpaced: the SSE endpoints send as fast as the client reads).
                configs.append(self.level(server, spec, 50 if not self.quick else 10, transport="sse"))
                levels += run_levels(configs, 4)
        self.results["overhead"] = levels

    def capacity(self) -> None:
        out: dict[str, Any] = {}
        for name, spec in (("opus", OPUS), ("pcm", PCM16)):
            steps = CAPACITY_STEPS[name] if not self.quick else (10, 20)
            with redis_for_workers(self.args.workers) as cluster, our_server(
                ["tone"], 2000, self.log_path(f"capacity-{name}"), cluster
            ) as server:
                out[f"{name}_server"] = server.command
                out[name] = self._step_capacity(server, spec, steps)
        self.results["capacity"] = out

    def _step_capacity(self, server: StartedServer, spec: StreamSpec, steps: Sequence[int]) -> dict[str, Any]:
        tried: list[dict[str, Any]] = []
        best, first_fail = 0, None

        def attempt(n: int) -> bool:
            level = run_levels([self.level(server, spec, n)], 4)[0]
            wait_idle(server.base_http)
            passed = capacity_passes(level)
            level["passed"] = passed
            tried.append(level)
            return passed

        for n in steps:
            if not attempt(n):
                first_fail = n
                break
            best = n
        if first_fail is not None and not self.quick:
            middle = (best + first_fail) // 2 if best else first_fail // 2
            if middle not in (best, first_fail) and middle > 0 and attempt(middle):
                best = middle
        return {"capacity": best, "first_failing": first_fail, "levels": tried}

    def cloud(self) -> None:
        key = "bench-key"
        emulator_port = free_port()
        emulator_argv = [
            sys.executable, "-m", "loadtest.emulators", "openai", "--port", str(emulator_port),
            "--api-key", key, "--first-byte-ms", "150", "--rtf", "4",
        ]  # fmt: skip
        env = {
            "STREAM_SERVER_OPENAI_BASE_URL": f"http://127.0.0.1:{emulator_port}",
            "STREAM_SERVER_OPENAI_API_KEY": key,
            # Upstream slots for every stream: the figure is the server's own delay, not a queue.
            "STREAM_SERVER_OPENAI_CONCURRENCY": "64",
        }
        with ManagedProcess("openai emulator", emulator_argv, self.log_path("emulator")) as emulator:
            wait_tcp("127.0.0.1", emulator_port, emulator, 60.0)
            with our_server(["openai"], 200, self.log_path("cloud"), env=env) as server:
                spec = StreamSpec(provider="openai", format="pcm", max_lead_ms=0)
                configs = [
                    self.level(server, spec, n, consume="fast", duration_s=self.duration(8.0, 3.0))
                    for n in ((1, 50) if not self.quick else (1, 5))
                ]
                self.results["cloud"] = {
                    # Without --port and the (dummy) --api-key: what to type to get the same emulator.
                    "emulator": "-m loadtest.emulators openai --first-byte-ms 150 --rtf 4",
                    "server": server.command,
                    "levels": run_levels(configs, 2),
                }

    def piper_and_peers(self) -> None:
        """Piper streams, then the paragraph from ours; then the peers, one server at a time."""
        from stream_server.providers.piper import default_model_path

        model = default_model_path()
        rounds_1, rounds_4 = (8, 4) if not self.quick else (2, 1)
        peers: dict[str, Any] = {"model": str(model)}
        # Our server listens for Wyoming too, for the side by side with wyoming-piper.
        wyoming_port = free_port()
        wyoming = ["--wyoming-uri", f"tcp://127.0.0.1:{wyoming_port}"] if "peers" in self.args.sections else []
        with our_server(["piper"], 64, self.log_path("piper"), extra_args=wyoming) as server:
            self.results["piper_server"] = server.command
            if "piper" in self.args.sections:
                spec = StreamSpec(provider="piper", format="pcm", max_lead_ms=0)
                configs = [
                    # Whole passages at once: the real-time factor is then synthesis-bound.
                    self.level(server, spec, n, consume="fast", tokens_per_s=0.0, duration_s=self.duration(15.0, 4.0))
                    for n in (1, 2, 4)
                ]
                self.results["piper"] = run_levels(configs, 4)
            if "peers" in self.args.sections:
                base_ws = "ws" + server.base_http.removeprefix("http")
                peers["ours"] = self._peer_rounds(lambda: ours_first_audio_ms(base_ws), rounds_1, rounds_4)
                peers["ours_command"] = server.command
                # The same request as wyoming-piper's below, to our Wyoming listener.
                once_wyoming = lambda: wyoming_first_audio_ms("127.0.0.1", wyoming_port)
                peers["ours_wyoming"] = self._peer_rounds(once_wyoming, rounds_1, rounds_4)
        if "peers" in self.args.sections:
            try:
                with piper_http_server(model, self.log_path("piper-http")) as (base, command):
                    peers["piper_http"] = self._peer_rounds(lambda: piper_http_first_audio_ms(base), rounds_1, rounds_4)
                    peers["piper_http_command"] = command
            except Exception as exc:  # noqa: BLE001 - a missing peer is reported, the others run
                peers["piper_http_error"] = f"{type(exc).__name__}: {exc}"
            try:
                with wyoming_piper_server(model, self.log_path("wyoming-piper")) as (port, command):
                    once = lambda: wyoming_first_audio_ms("127.0.0.1", port)
                    peers["wyoming_piper"] = self._peer_rounds(once, rounds_1, rounds_4)
                    peers["wyoming_piper_command"] = command
            except Exception as exc:  # noqa: BLE001
                peers["wyoming_piper_error"] = f"{type(exc).__name__}: {exc}"
            self.results["peers"] = peers

    def _peer_rounds(self, once: Callable[[], Any], rounds_1: int, rounds_4: int) -> dict[str, Any]:
        async def both() -> dict[str, Any]:
            return {
                "1": await measure(once, concurrent=1, rounds=rounds_1, warmup=1),
                "4": await measure(once, concurrent=4, rounds=rounds_4, warmup=0),
            }

        return asyncio.run(both())

    def memory(self) -> None:
        idle_n, active_n = (400, 100) if not self.quick else (50, 10)
        with our_server(["tone"], 1000, self.log_path("memory")) as server:
            # Warm up the code paths (imports, codec tables) so they are not charged to streams.
            run_levels([self.level(server, OPUS, 10, duration_s=2.0)], 2, progress=False)
            wait_idle(server.base_http)
            baseline = _rss(server.pid)
            base_ws = "ws" + server.base_http.removeprefix("http")

            async def hold_idle() -> tuple[int, int]:
                async with idle_connections(base_ws, OPUS, idle_n) as opened:
                    await asyncio.sleep(1.0)  # let the server settle what it allocates per connection
                    return opened, _rss(server.pid)

            opened, idle_rss = asyncio.run(hold_idle())
            wait_idle(server.base_http)
            before_active = _rss(server.pid)
            level = asyncio.run(
                run_level(
                    self.level(server, OPUS, active_n, duration_s=self.duration(8.0, 3.0), sentences_per_stream=8),
                    PassageSource(8),
                )
            )
            peak = int((level["server_process"] or {}).get("rss_mib_peak", 0) * MIB)
            self.results["memory"] = {
                "server": server.command,
                "baseline_rss_mib": round(baseline / MIB, 1),
                "idle_connections": opened,
                "idle_rss_mib": round(idle_rss / MIB, 1),
                "per_idle_connection_kib": round((idle_rss - baseline) / 1024 / max(1, opened), 1),
                "active_streams": active_n,
                "rss_before_active_mib": round(before_active / MIB, 1),
                "active_rss_peak_mib": round(peak / MIB, 1),
                "per_active_stream_kib": round((peak - before_active) / 1024 / active_n, 1),
                "active_level": level,
            }

    def run(self) -> None:
        sections = self.args.sections
        if "overhead" in sections:
            self.guarded("overhead", self.overhead)
        if "capacity" in sections:
            self.guarded("capacity", self.capacity)
        if "cloud" in sections:
            self.guarded("cloud", self.cloud)
        if "piper" in sections or "peers" in sections:
            self.guarded("piper and peers", self.piper_and_peers)
        if "memory" in sections:
            self.guarded("memory", self.memory)


def _rss(pid: int) -> int:
    sample = read_sample(pid)
    return sample.rss_bytes if sample is not None else 0


def capacity_passes(level: dict[str, Any]) -> bool:
    p99 = level["ttfa_ms"]["p99"]
    return (
        level["streams_failed"] == 0
        and level["streams_completed"] > 0
        and level["underruns"] == 0
        and p99 is not None
        and p99 < CAPACITY_TTFA_P99_MS
    )


def _sections(value: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items or any(v not in SECTIONS for v in items):
        raise argparse.ArgumentTypeError(f"choose from {','.join(SECTIONS)}")
    return items


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", type=_sections, default=list(SECTIONS), help=f"any of {','.join(SECTIONS)}")
    parser.add_argument("--quick", action="store_true", help="a short version (minutes), to try the suite out")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "BENCHMARKS.md", help="the Markdown file")
    parser.add_argument(
        "--workers", type=int, default=1,
        help="overhead and capacity: the server runs with --workers N (and a redis-server of its own when N > 1)",
    )  # fmt: skip
    parser.add_argument("--render", type=Path, metavar="JSON", help="only rewrite --output from a suite's JSON file")
    args = parser.parse_args(argv)
    if args.render:
        args.output.write_text(render_benchmarks_md(json.loads(args.render.read_text())), encoding="utf-8")
        print(f"{args.output} written from {args.render}")
        return 0
    now = dt.datetime.now().astimezone()
    stamp = now.strftime("%Y%m%d-%H%M%S")
    command = shlex.join(["python", "-m", "loadtest", "bench", *(argv if argv is not None else sys.argv[1:])])
    meta: dict[str, Any] = {
        "started": now.isoformat(timespec="seconds"),
        "command": command,
        "machine": machine_info(),
        "loadavg_start": loadavg(),
        "quick": args.quick,
        "workers": args.workers,
        "targets": TARGETS,
    }
    suite = Suite(args, stamp)
    started = time.monotonic()
    with stop_on_signals():
        try:
            suite.run()
        finally:
            meta["loadavg_end"] = loadavg()
            meta["duration_s"] = round(time.monotonic() - started, 1)
            result = {"meta": meta, "results": suite.results, "failed": suite.failed}
            json_path = RESULTS_DIR / f"bench-{stamp}.json"
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    args.output.write_text(render_benchmarks_md(result), encoding="utf-8")
    print(f"{args.output} written ({meta['duration_s']:.0f} s); every figure: {json_path}")
    return 1 if suite.failed else 0


if __name__ == "__main__":
    sys.exit(main())
