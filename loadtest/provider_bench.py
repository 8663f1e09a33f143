"""Time to first audio through the server against a cloud provider's emulator.

The OpenAI emulator answers after `--first-byte-ms` (150 ms, like a fast cloud service) and
streams 24 kHz PCM. The figure that matters is what the server adds on top of the upstream: each
stream's `done` message splits its time to first audio into `provider_ms` (until the provider's
first audio arrived) and the rest, which is the server's own (`added`). The client-side TTFA and
the emulator's own time to first byte (measured directly with httpx) are shown beside it. Server
and emulator run as separate processes on loopback; streams run 1 at a time and 50 at once.

    python -m loadtest.provider_bench            # from the repository root
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack, contextmanager
from collections.abc import Iterator
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

RESULTS = Path(__file__).resolve().parent / "results"
FIRST = "The old lighthouse keeper walked slowly down to the river. "
REST = ["He ", "had ", "done ", "it ", "every ", "evening. "]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def process(argv: list[str], env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_up(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


async def direct_ttfb(base: str, key: str) -> float:
    """The emulator alone: request to first body byte, in ms."""
    body = {"model": "gpt-4o-mini-tts", "input": FIRST.strip(), "voice": "alloy", "response_format": "pcm"}
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}) as client:
        start = time.perf_counter()
        async with client.stream("POST", "/v1/audio/speech", json=body) as response:
            async for _ in response.aiter_bytes():
                return (time.perf_counter() - start) * 1000
    raise RuntimeError("no audio")


async def stream_ttfa(ws_url: str) -> tuple[float, float]:
    """Through the server: (client TTFA from the completing token to the first frame, server-added ms)."""
    async with connect(ws_url) as ws:
        await ws.recv()  # ready
        words = FIRST.split(" ")
        for word in words[:-2]:
            await ws.send(json.dumps({"type": "text", "text": word + " "}))
        start = time.perf_counter()
        await ws.send(json.dumps({"type": "text", "text": words[-2] + " "}))
        first: float | None = None
        for token in REST:
            await ws.send(json.dumps({"type": "text", "text": token}))
        await ws.send(json.dumps({"type": "end"}))
        done: dict = {}
        async for message in ws:
            if isinstance(message, bytes) and first is None:
                first = (time.perf_counter() - start) * 1000
            elif isinstance(message, str) and '"done"' in message:
                done = json.loads(message)
        if first is None or done.get("provider_ms") is None:
            raise RuntimeError("no audio")
        return first, done["ttfa_ms"] - done["provider_ms"]


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"n": len(values), "p50": statistics.median(values), "p90": pick(0.9), "p99": pick(0.99), "max": ordered[-1]}


async def measure(ws_url: str, base: str, key: str, concurrency: int, rounds: int) -> dict[str, dict[str, float]]:
    through: list[float] = []
    added: list[float] = []
    direct: list[float] = []
    for _ in range(rounds):
        for ttfa, server_added in await asyncio.gather(*(stream_ttfa(ws_url) for _ in range(concurrency))):
            through.append(ttfa)
            added.append(server_added)
        direct += await asyncio.gather(*(direct_ttfb(base, key) for _ in range(concurrency)))
    return {"through_server": summary(through), "emulator_direct": summary(direct), "added": summary(added)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--first-byte-ms", type=float, default=150.0)
    parser.add_argument("--rounds", type=int, default=20, help="rounds per concurrency level")
    parser.add_argument("--rtf", type=float, default=4.0, help="the emulator streams audio this many times real time")
    parser.add_argument("--concurrency", default="1,50")
    args = parser.parse_args(argv)
    key = "bench-key"
    emulator_port, server_port = free_port(), free_port()
    base = f"http://127.0.0.1:{emulator_port}"
    env = {
        **os.environ,
        "STREAM_SERVER_PROVIDERS": "openai",
        "STREAM_SERVER_PROVIDER": "openai",
        "STREAM_SERVER_OPENAI_BASE_URL": base,
        "STREAM_SERVER_OPENAI_API_KEY": key,
        # Enough upstream slots for every stream at once: the figure is the server's own delay.
        "STREAM_SERVER_OPENAI_CONCURRENCY": "64",
        "STREAM_SERVER_MAX_LEAD_MS": "0",
        "STREAM_SERVER_LOG_LEVEL": "warning",
    }
    results: dict[str, object] = {
        "command": sys.argv, "first_byte_ms": args.first_byte_ms, "rtf": args.rtf, "cores": os.cpu_count()
    }
    with ExitStack() as stack:
        stack.enter_context(process([
            sys.executable, "-m", "loadtest.emulators", "openai", "--port", str(emulator_port),
            "--api-key", key, "--first-byte-ms", str(args.first_byte_ms), "--rtf", str(args.rtf),
        ]))  # fmt: skip
        stack.enter_context(process([sys.executable, "-m", "stream_server", "--port", str(server_port)], env=env))
        wait_up(f"{base}/")
        wait_up(f"http://127.0.0.1:{server_port}/healthz")
        ws_url = f"ws://127.0.0.1:{server_port}/v1/tts/stream"
        asyncio.run(measure(ws_url, base, key, 1, 3))  # warm-up: connections, code paths
        for level in (int(c) for c in args.concurrency.split(",")):
            rounds = args.rounds if level == 1 else max(2, args.rounds // 10)
            row = asyncio.run(measure(ws_url, base, key, level, rounds))
            results[f"concurrency_{level}"] = row
            added, through = row["added"], row["through_server"]
            print(
                f"{level:>3} stream(s): through server p50 {through['p50']:.1f} ms, p99 {through['p99']:.1f}; "
                f"emulator alone p50 {row['emulator_direct']['p50']:.1f}; "
                f"added p50 {added['p50']:.1f} ms, p99 {added['p99']:.1f} (n={added['n']})",
                flush=True,
            )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"provider-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
