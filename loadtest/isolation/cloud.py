"""A cloud provider's slots and stalls: can alice's unread sessions or a stalled upstream silence bob?

Scenarios (the isolation issue's findings 1 and 2), each against a fresh server whose `openai`
provider talks to the OpenAI emulator in its own process:

- slots: the emulator streams at real time (`--rtf 1`), `--openai-concurrency 8` (the default);
  alice opens 10 SSE sessions on `openai`, posts 20 sentences to each and never reads; bob's
  WebSocket streams on `openai` (one sentence each, fresh connection) measure his first audio,
  alone and then beside alice.
- stall: the emulator accepts and then sends nothing; with `--fallback tone`, bob's first audio
  (the fallback's) after his text, with the server's default first-audio budget and retries.
- readiness: the upstream fails every request until the breaker opens; `/readyz` while `tone`
  still serves.

    python -m loadtest.isolation.cloud [--server-source DIR]
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from loadtest.load.server import StartedServer, our_server

from . import Figure, emulator, environment, log_path, markdown, parser

EMULATOR_KEY = "test-key"
ALICE, BOB = "alice-0123456789abcdef0123", "bob-0123456789abcdef01234"
SENTENCE = "The quick brown fox jumps over the lazy dog near the river bank."
BOB_RUNS = 5
WAIT_CAP_S = 70.0
"""The longest one measurement waits (the stall took 45 s before the fix)."""


def server_args(url: str, *extra: str) -> list[str]:
    return [
        "--openai-base-url", url, "--openai-api-key", EMULATOR_KEY, "--api-keys", f"{ALICE},{BOB}",
        "--log-level", "warning", *extra,
    ]  # fmt: skip


async def first_audio_s(server: StartedServer, key: str, provider: str = "openai") -> float:
    """One WebSocket stream of SENTENCE: seconds from the text to the first audio frame."""
    ws_url = server.base_http.replace("http://", "ws://") + f"/v1/tts/stream?provider={provider}&format=pcm"
    async with connect(ws_url, additional_headers={"Authorization": f"Bearer {key}"}) as ws:
        await ws.recv()  # ready
        started = time.perf_counter()
        await ws.send(f'{{"type":"text","text":"{SENTENCE}"}}')
        await ws.send('{"type":"end"}')
        async with asyncio.timeout(WAIT_CAP_S):
            while not isinstance(await ws.recv(), bytes):
                pass
        return time.perf_counter() - started


async def bobs_median(server: StartedServer) -> str:
    times = []
    for _ in range(BOB_RUNS):
        try:
            times.append(await first_audio_s(server, BOB))
        except TimeoutError:
            return f"> {WAIT_CAP_S:g} s (no audio)"
    return f"{statistics.median(times):.2f} s (max {max(times):.2f})"


async def alices_unread_sessions(http: httpx.AsyncClient, sessions: int = 10, sentences: int = 20) -> None:
    headers = {"Authorization": f"Bearer {ALICE}"}
    for _ in range(sessions):
        created = await http.post("/v1/tts/sessions", json={"provider": "openai", "format": "pcm"}, headers=headers)
        created.raise_for_status()
        text = " ".join([SENTENCE] * sentences)
        (await http.post(created.json()["text_url"], json={"text": text, "end": True}, headers=headers)).raise_for_status()


async def wait_for_requests(http: httpx.AsyncClient, at_least: int) -> None:
    """Until the server's openai provider has sent `at_least` requests (alice's load is on)."""
    async with asyncio.timeout(30):
        while (await http.get("/healthz")).json()["providers"]["openai"].get("requests", 0) < at_least:
            await asyncio.sleep(0.05)  # polling the server's counters


async def slots(source: Path | None) -> list[Figure]:
    scenario = "alice: 10 unread SSE sessions × 20 sentences on openai (rtf 1, concurrency 8)"
    with (
        emulator("openai", log_path("cloud-emulator"), "--api-key", EMULATOR_KEY, "--rtf", "1") as url,
        our_server(["openai", "tone"], 50, log_path("cloud-slots"), server_args(url), env=environment(None, source)) as server,
    ):
        async with httpx.AsyncClient(base_url=server.base_http, timeout=30) as http:
            alone = await bobs_median(server)
            await alices_unread_sessions(http)
            await wait_for_requests(http, BOB_RUNS + 8)
            await asyncio.sleep(3)  # let alice's sessions fill their buffers (a benchmark, not a test)
            beside = await bobs_median(server)
    return [
        Figure(scenario, f"bob's first audio alone, median of {BOB_RUNS}", alone),
        Figure(scenario, f"bob's first audio beside alice, median of {BOB_RUNS}", beside, "<= 1 s"),
    ]


async def stall(source: Path | None) -> list[Figure]:
    with (
        emulator("openai", log_path("stall-emulator"), "--api-key", EMULATOR_KEY, "--fault", "stall") as url,
        our_server(
            ["openai", "tone"], 50, log_path("cloud-stall"), server_args(url, "--fallback", "tone"),
            env=environment(None, source),
        ) as server,
    ):  # fmt: skip
        try:
            heard = f"{await first_audio_s(server, BOB):.2f} s"
        except TimeoutError:
            heard = f"> {WAIT_CAP_S:g} s"
    scenario = "the upstream accepts and sends nothing; --fallback tone, default budget and retries"
    return [Figure(scenario, "bob's first audio (the fallback voice)", heard, "~2 s")]


async def readiness(source: Path | None) -> list[Figure]:
    with (
        emulator("openai", log_path("ready-emulator"), "--api-key", EMULATOR_KEY, "--fault", "500") as url,
        our_server(["openai", "tone"], 50, log_path("cloud-ready"), server_args(url), env=environment(None, source)) as server,
    ):
        async with httpx.AsyncClient(base_url=server.base_http, timeout=30) as http:
            for _ in range(6):  # --breaker-failures 5
                await first_audio_s(server, BOB, provider="tone")  # tone still serves
                try:
                    await first_audio_s(server, BOB)
                except ConnectionClosed:  # the failing provider's stream ends without audio
                    pass
            ready = await http.get("/readyz")
    scenario = "openai fails until its breaker opens; tone serves"
    return [Figure(scenario, "/readyz status", f"{ready.status_code} {ready.text[:90]}", "200, openai degraded")]


def measure(source: Path | None) -> list[Figure]:
    async def run() -> list[Figure]:
        return [*await slots(source), *await stall(source), *await readiness(source)]

    return asyncio.run(run())


def main(argv: Sequence[str] | None = None) -> int:
    args = parser(__doc__.split("\n\n")[0]).parse_args(argv)
    print(markdown(measure(args.server_source)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
