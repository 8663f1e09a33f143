"""Finished SSE sessions: how much can one client make an open server keep?

The isolation issue's finding 5: on a server without keys (loopback), clients create SSE sessions
(f32 48 kHz, 200 ms frames, unpaced, 70 words of `tone` each), read each to `done`, and never delete them,
as fast as they can for `--seconds`. Measured: sessions made and refused, and the server's resident
memory before, at its peak, and after.

    python -m loadtest.isolation.sse_memory [--server-source DIR] [--seconds 25]
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from loadtest.load.server import our_server

from . import Figure, environment, log_path, markdown, parser, rss_mib

WORDS = " ".join(f"word{i}" for i in range(69)) + " end."
CLIENTS = 8
CONFIG = {"format": "f32", "sample_rate": 48000, "frame_ms": 200, "max_lead_ms": 0}  # unpaced: as fast as read


async def session_loop(http: httpx.AsyncClient, until: float, counts: dict[str, int]) -> None:
    while time.monotonic() < until:
        created = await http.post("/v1/tts/sessions", json=CONFIG)
        if created.status_code == 429:
            counts["refused"] += 1
            await asyncio.sleep(min(1.0, float(created.headers.get("retry-after", "1"))))  # as a client would
            continue
        created.raise_for_status()
        urls = created.json()
        await http.post(urls["text_url"], json={"text": WORDS, "end": True})
        async with http.stream("GET", urls["events_url"]) as events:
            async for _ in events.aiter_bytes():
                pass
        counts["made"] += 1


async def sample_peak(pid: int, until: float, peak: list[float]) -> None:
    while time.monotonic() < until:
        peak[0] = max(peak[0], rss_mib(pid))
        await asyncio.sleep(0.2)  # a sampling interval


def measure(source: Path | None, seconds: float = 25.0) -> list[Figure]:
    with our_server(["tone"], 100, log_path("sse-memory"), ["--log-level", "warning"], env=environment(None, source)) as server:

        async def run() -> tuple[dict[str, int], float, float]:
            counts = {"made": 0, "refused": 0}
            before = rss_mib(server.pid)
            peak = [before]
            until = time.monotonic() + seconds
            async with httpx.AsyncClient(base_url=server.base_http, timeout=30) as http:
                await asyncio.gather(
                    sample_peak(server.pid, until, peak), *(session_loop(http, until, counts) for _ in range(CLIENTS))
                )
            return counts, before, peak[0]

        counts, before, peak = asyncio.run(run())
        after = rss_mib(server.pid)
    scenario = f"open server: {CLIENTS} clients make SSE sessions for {seconds:g} s, read each to done, never delete"
    return [
        Figure(scenario, "sessions made / refused (429)", f"{counts['made']} / {counts['refused']}"),
        Figure(scenario, "server RSS before → peak → after, MiB", f"{before:.0f} → {peak:.0f} → {after:.0f}"),
        Figure(scenario, "RSS growth at the peak, MiB", f"{peak - before:.0f}", "< 300"),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    options = parser(__doc__.split("\n\n")[0])
    options.add_argument("--seconds", type=float, default=25.0)
    args = options.parse_args(argv)
    print(markdown(measure(args.server_source, args.seconds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
