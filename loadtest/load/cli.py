"""`python -m loadtest run`: N concurrent LLM-like streams against a loopback server; JSON, table, PNG."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import ipaddress
import json
import shlex
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from loadtest.ttfa import RESULTS_DIR, loadavg, machine_info, stop_on_signals

from .chart import write_chart
from .corpus import PassageSource
from .report import render_table
from .runner import LevelConfig, run_level
from .server import our_server, wait_idle
from .spec import StreamSpec

MAX_STREAMS_PER_LEVEL = 2000
MAX_DURATION_S = 600.0


def loopback_base(url: str) -> str:
    """`ws://127.0.0.1:8000/...` or `http://localhost:8000` -> `http://host:port`; loopback only."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "ws") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"expected http://127.0.0.1:PORT or ws://127.0.0.1:PORT, not {url!r}")
    host = parts.hostname
    loopback = host == "localhost"
    with contextlib.suppress(ValueError):
        loopback = loopback or ipaddress.ip_address(host).is_loopback
    if not loopback:
        raise argparse.ArgumentTypeError(f"{host} is not a loopback address: load runs target this machine only")
    return f"http://{parts.netloc}"


def _int_list(value: str) -> list[int]:
    try:
        items = [int(v) for v in value.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected numbers like 1,10,50, not {value!r}") from exc
    if not items or any(not 1 <= n <= MAX_STREAMS_PER_LEVEL for n in items):
        raise argparse.ArgumentTypeError(f"each level must be 1..{MAX_STREAMS_PER_LEVEL} streams")
    return items


def _transports(value: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items or any(v not in ("ws", "sse") for v in items):
        raise argparse.ArgumentTypeError("transports: ws, sse or ws,sse")
    return items


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest run",
        description="Drive N concurrent LLM-like streams against a stream_server on loopback (WebSocket and/or "
        "SSE sessions) and report TTFA, gaps between segments, player underruns, frames/s, server CPU and RSS.",
    )
    add = parser.add_argument
    target = parser.add_argument_group("target (default: start `python -m stream_server` with --providers here)")
    target.add_argument("--url", type=loopback_base, help="a running server on loopback (http://127.0.0.1:8000)")
    target.add_argument("--pid", type=int, help="that server's pid, for its CPU and RSS from /proc")
    target.add_argument(
        "--providers", help="providers of the server started here, comma-separated (default: --provider's)"
    )
    target.add_argument(
        "--server-arg", action="append", default=[], metavar="ARG",
        help="extra argument for the server started here (repeat), e.g. --server-arg=--opus-complexity=3",
    )  # fmt: skip
    load = parser.add_argument_group("load")
    load.add_argument("--streams", type=_int_list, default=[10], help="concurrency levels, e.g. 1,10,50 (default 10)")
    load.add_argument("--transport", type=_transports, default=["ws"], help="ws, sse or ws,sse (default ws)")
    load.add_argument("--duration-s", type=float, default=10.0, help="per level: new streams start this long (10)")
    load.add_argument("--ramp-s", type=float, default=2.0, help="slots start spread over this long (2)")
    load.add_argument("--tokens-per-s", type=float, default=40.0, help="tokens (words) per second per stream (40)")
    load.add_argument("--sentences", type=int, default=4, help="sentences of the corpus per stream (4)")
    load.add_argument(
        "--consume", choices=("player", "fast"), default="player",
        help="player: a simulated playout clock with a jitter buffer, counting underruns; "
        "fast: read as fast as possible, unpaced (default player)",
    )  # fmt: skip
    load.add_argument("--jitter-buffer-ms", type=float, default=100.0, help="player's start-up buffer (100)")
    load.add_argument("--stream-timeout-s", type=float, default=60.0, help="bound of one stream (60)")
    load.add_argument("--max-total-streams", type=int, default=20_000, help="bound of streams started per level")
    load.add_argument("--ws-compression", choices=("none", "deflate"), default="none", help="offer permessage-deflate")
    stream = parser.add_argument_group("each stream")
    stream.add_argument("--provider", default="tone")
    stream.add_argument("--voice")
    stream.add_argument("--format", default="pcm")
    stream.add_argument("--sample-rate", type=int)
    stream.add_argument("--frame-ms", type=int)
    stream.add_argument("--timestamps", choices=("word", "char"), help="ask for alignment messages (default none)")
    stream.add_argument(
        "--max-lead-ms", type=int,
        help="server pacing per stream (default: the server's for player, 0 = unpaced for fast)",
    )  # fmt: skip
    add("--output", type=Path, help="JSON path (default loadtest/results/run-<time>.json; .txt and .png beside it)")
    add("--no-chart", action="store_true", help="skip the PNG")
    return parser


def level_configs(args: argparse.Namespace, base_http: str, pid: int | None) -> list[LevelConfig]:
    max_lead = args.max_lead_ms if args.max_lead_ms is not None else (0 if args.consume == "fast" else None)
    spec = StreamSpec(
        provider=args.provider,
        voice=args.voice,
        format=args.format,
        sample_rate=args.sample_rate,
        frame_ms=args.frame_ms,
        max_lead_ms=max_lead,
        timestamps=args.timestamps,
    )
    base = LevelConfig(
        base_http=base_http,
        transport="ws",
        streams=1,
        spec=spec,
        duration_s=args.duration_s,
        ramp_s=args.ramp_s,
        tokens_per_s=args.tokens_per_s,
        sentences_per_stream=args.sentences,
        consume=args.consume,
        jitter_buffer_ms=args.jitter_buffer_ms,
        stream_timeout_s=args.stream_timeout_s,
        max_total_streams=args.max_total_streams,
        server_pid=pid,
        ws_compression=None if args.ws_compression == "none" else "deflate",
    )
    return [replace(base, transport=t, streams=n) for t in args.transport for n in args.streams]  # type: ignore[arg-type]


def run_levels(configs: Sequence[LevelConfig], sentences: int, progress: bool = True) -> list[dict[str, Any]]:
    """Each level in turn, waiting for the server to be idle in between (so levels do not overlap)."""
    source = PassageSource(sentences)
    levels: list[dict[str, Any]] = []
    for index, config in enumerate(configs):
        if progress:
            print(f"  {config.transport} N={config.streams} ...", file=sys.stderr, flush=True)
        level = asyncio.run(run_level(config, source))
        if index < len(configs) - 1:
            level["streams_open_before_next_level"] = wait_idle(config.base_http)
        level["loadavg_after"] = loadavg()
        levels.append(level)
        if progress:
            ttfa = level["ttfa_ms"]
            print(
                f"    ok {level['streams_completed']} failed {level['streams_failed']} ttfa p50 {ttfa['p50']} "
                f"p99 {ttfa['p99']} underruns {level['underruns']}",
                file=sys.stderr,
                flush=True,
            )
    return levels


def write_outputs(result: dict[str, Any], json_path: Path, title: str, chart: bool) -> dict[str, Path]:
    json_path.parent.mkdir(parents=True, exist_ok=True)
    paths = {"json": json_path, "table": json_path.with_suffix(".txt")}
    table = render_table(result["levels"], title)
    paths["table"].write_text(table + "\n", encoding="utf-8")
    if chart:
        paths["chart"] = json_path.with_suffix(".png")
        write_chart(result["levels"], paths["chart"], title)
    result["outputs"] = {k: str(v) for k, v in paths.items()}
    json_path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0 < args.duration_s <= MAX_DURATION_S or args.ramp_s < 0 or args.sentences < 1:
        parser.error(f"--duration-s must be in (0, {MAX_DURATION_S:.0f}], --ramp-s >= 0, --sentences >= 1")
    if args.pid and not args.url:
        parser.error("--pid goes with --url (a server started here is sampled anyway)")
    now = dt.datetime.now().astimezone()
    json_path: Path = args.output or RESULTS_DIR / f"run-{now.strftime('%Y%m%d-%H%M%S')}.json"
    meta: dict[str, Any] = {
        "started": now.isoformat(timespec="seconds"),
        "command": shlex.join(["python", "-m", "loadtest", "run", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine_info(),
        "loadavg_start": loadavg(),
    }
    with stop_on_signals(), contextlib.ExitStack() as stack:
        if args.url:
            base_http, pid = args.url, args.pid
            meta["server"] = {"url": base_http, "pid": pid, "started_here": False}
        else:
            providers = [p.strip() for p in (args.providers or args.provider).split(",") if p.strip()]
            if args.provider not in providers:
                parser.error(f"--provider {args.provider} is not among --providers {','.join(providers)}")
            log = json_path.with_suffix(".server.log")
            server = stack.enter_context(our_server(providers, max(args.streams) + 16, log, args.server_arg))
            base_http, pid = server.base_http, server.pid
            meta["server"] = {"url": base_http, "pid": pid, "started_here": True, "command": server.command}
            print(f"server: {server.command}", file=sys.stderr)
        levels = run_levels(level_configs(args, base_http, pid), args.sentences)
    meta["loadavg_end"] = loadavg()
    result = {"meta": meta, "levels": levels}
    title = f"python -m loadtest run  ({meta['started']}, load average {meta['loadavg_start']})"
    paths = write_outputs(result, json_path, title, chart=not args.no_chart)
    print(paths["table"].read_text(encoding="utf-8"))
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 1 if any(level["streams_failed"] for level in levels) else 0
