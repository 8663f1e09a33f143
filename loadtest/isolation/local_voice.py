"""The local voice under one user's load: bob's time to first audio while alice keeps Piper busy,
and the peak memory of one short message (issue 14, findings 3 and 4).

Servers run as the README runs them (`python -m stream_server`, the embedded Piper voice, its
default single inference worker), with a keys file holding alice and bob at the default per-key
limits. Scenarios:

- bob alone: one short sentence per fresh WebSocket stream, time from sending it (with `end`)
  to the first audio frame; `/v1/audio/speech` the same, to the first body byte.
- under alice: alice opens 20 WebSocket streams of 2,900 characters each (58,000 of her 60,000
  characters per minute) and reads their audio as it comes; once her work is queued, bob measures
  again. Once with alice's streams at the default `max_lead_ms`, once with `max_lead_ms: 0`
  (every one of her jobs urgent), and once over `/v1/audio/speech`.
- memory: on a fresh server, one 300-character message per stream (`"中" * 299 + "。"` at speed 1
  and 0.25, 299 emoji with `emoji: read`), all its audio read; the server's peak RSS growth over
  the message is read from /proc (its high-water mark is reset first), and the audio's length kept.

    python -m loadtest.isolation.local_voice [--server-source DIR]
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect

from loadtest.isolation import Figure, environment, markdown, parser
from loadtest.load.server import our_server
from stream_server.security.keys import key_line, new_key

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
BOB_TEXT = "Hello there, how are you today?"
ALICE_STREAMS = 20
ALICE_CHARS = 2_900
BOB_RUNS = 7
ALICE_HEAD_START_S = 4.0
"""Alice's streams are open and their first jobs queued before bob starts measuring."""
TIMEOUT_S = 120.0
MEMORY_MESSAGES = [
    ("'中' * 299 + '。', speed 1", "中" * 299 + "。", 1.0, "skip"),
    ("'中' * 299 + '。', speed 0.25", "中" * 299 + "。", 0.25, "skip"),
    ("299 emoji, emoji: read", "😀" * 299, 1.0, "read"),
]
RATE = 22050


def alice_text() -> str:
    """2,900 characters of ordinary prose, cut at a word."""
    words = " ".join(" ".join(path.read_text(encoding="utf-8").split()) for path in sorted(CORPUS.glob("*.txt")))
    while len(words) < ALICE_CHARS:
        words = f"{words} {words}"
    return words[:ALICE_CHARS].rsplit(" ", 1)[0]


class Keys:
    def __init__(self, directory: Path) -> None:
        self.alice, self.bob = new_key(), new_key()
        self.path = directory / "keys.txt"
        self.path.write_text(f"{key_line('alice', self.alice)}\n{key_line('bob', self.bob)}\n", encoding="utf-8")

    @staticmethod
    def header(key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}


async def ws_ttfa(ws_url: str, key: str, text: str) -> float:
    """Seconds from sending `text` and `end` to the first audio frame, on a fresh stream."""
    async with connect(ws_url, additional_headers=Keys.header(key), max_size=None) as ws:
        json.loads(await ws.recv())  # ready
        started = time.perf_counter()
        await ws.send(json.dumps({"type": "text", "text": text}))
        await ws.send(json.dumps({"type": "end"}))
        first: float | None = None
        async for message in ws:
            if isinstance(message, bytes) and first is None:
                first = time.perf_counter() - started
            elif isinstance(message, str) and json.loads(message)["type"] in ("done", "error"):
                break
    if first is None:
        raise RuntimeError("bob's stream ended without audio")
    return first


async def speech_ttfa(base_http: str, key: str, text: str) -> float:
    body = {"model": "piper", "voice": "alloy", "input": text, "response_format": "pcm"}
    async with httpx.AsyncClient(timeout=TIMEOUT_S) as client:
        started = time.perf_counter()
        first: float | None = None
        url = f"{base_http}/v1/audio/speech"
        async with client.stream("POST", url, json=body, headers=Keys.header(key)) as response:
            response.raise_for_status()
            async for chunk in response.aiter_bytes():
                if chunk and first is None:
                    first = time.perf_counter() - started
    if first is None:
        raise RuntimeError("bob's speech request ended without audio")
    return first


async def alice_stream(ws_url: str, key: str, text: str) -> None:
    """One of alice's streams: send her text, then read whatever comes until cancelled."""
    async with connect(ws_url, additional_headers=Keys.header(key), max_size=None) as ws:
        json.loads(await ws.recv())
        for start in range(0, len(text), 500):
            await ws.send(json.dumps({"type": "text", "text": text[start : start + 500]}))
        await ws.send(json.dumps({"type": "end"}))
        async for _ in ws:
            pass


async def alice_load(ws_url: str, key: str, stop: Any) -> None:
    async with asyncio.TaskGroup() as tasks:
        streams = [tasks.create_task(alice_stream(ws_url, key, alice_text())) for _ in range(ALICE_STREAMS)]
        await asyncio.to_thread(stop.wait, TIMEOUT_S)
        for stream in streams:
            stream.cancel()


def run_alice(ws_url: str, key: str, stop: Any) -> None:
    """Alice's client, in a process of its own: reading her audio must not delay bob's client."""
    asyncio.run(alice_load(ws_url, key, stop))


async def bob_under_alice(ws_url: str, base_http: str, keys: Keys, alice_lead: int | None, over: str) -> list[float]:
    query = "" if alice_lead is None else f"?max_lead_ms={alice_lead}"
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    alice = context.Process(target=run_alice, args=(ws_url + query, keys.alice, stop), daemon=True)
    alice.start()
    try:
        await asyncio.sleep(ALICE_HEAD_START_S)  # a load generator's pacing, not a race fix
        return await bob_runs(ws_url, base_http, keys, over)
    finally:
        stop.set()
        await asyncio.to_thread(alice.join, 10.0)
        if alice.is_alive():
            alice.terminate()
            await asyncio.to_thread(alice.join, 5.0)


async def bob_runs(ws_url: str, base_http: str, keys: Keys, over: str) -> list[float]:
    times = []
    for _ in range(BOB_RUNS):
        if over == "ws":
            times.append(await asyncio.wait_for(ws_ttfa(ws_url, keys.bob, BOB_TEXT), TIMEOUT_S))
        else:
            times.append(await asyncio.wait_for(speech_ttfa(base_http, keys.bob, BOB_TEXT), TIMEOUT_S))
    return times


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


async def message_memory(ws_url: str, pid: int, key: str, text: str, speed: float, emoji: str) -> tuple[float, float]:
    """(peak RSS growth in MB, seconds of audio) for one message on its own stream."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset the high-water mark to the RSS now
    before = status_kib(pid, "VmRSS")
    samples = 0
    url = f"{ws_url}?format=pcm&sample_rate={RATE}&speed={speed}&emoji={emoji}&max_lead_ms=0"
    async with connect(url, additional_headers=Keys.header(key), max_size=None) as ws:
        json.loads(await ws.recv())
        await ws.send(json.dumps({"type": "text", "text": text}))
        await ws.send(json.dumps({"type": "end"}))
        async for message in ws:
            if isinstance(message, bytes):
                samples += len(message) // 2
            elif json.loads(message)["type"] in ("done", "error"):
                break
    return (status_kib(pid, "VmHWM") - before) / 1024, samples / RATE


def median_s(values: Sequence[float]) -> str:
    return f"{statistics.median(values):.3f}"


async def measure_async(source: Path | None, log_dir: Path) -> list[Figure]:
    figures: list[Figure] = []
    keys = Keys(log_dir)
    extra = ["--api-keys-file", str(keys.path)]
    env = environment(None, source)
    runs = f"p50 of {BOB_RUNS}"
    with our_server(["piper"], 100, log_dir / "alone.log", extra, env=env) as server:
        ws_url = server.base_http.replace("http://", "ws://") + "/v1/tts/stream"
        await ws_ttfa(ws_url, keys.bob, BOB_TEXT)  # warm-up
        alone = {over: await bob_runs(ws_url, server.base_http, keys, over) for over in ("ws", "speech")}
    figures.append(Figure("bob alone, WebSocket", f"bob's first audio, s ({runs})", median_s(alone["ws"])))
    figures.append(Figure("bob alone, /v1/audio/speech", f"bob's first audio, s ({runs})", median_s(alone["speech"])))
    for label, lead, over in [
        ("default max_lead_ms", None, "ws"),
        ("max_lead_ms: 0", 0, "ws"),
        ("default max_lead_ms; bob on /v1/audio/speech", None, "speech"),
    ]:
        # A server each: alice's 58,000 characters take most of her minute's allowance, so a second
        # round on the same server would be refused part of its text.
        with our_server(["piper"], 100, log_dir / "loaded.log", extra, env=env) as server:
            ws_url = server.base_http.replace("http://", "ws://") + "/v1/tts/stream"
            times = await bob_under_alice(ws_url, server.base_http, keys, lead, over)
        figures.append(
            Figure(
                f"alice: {ALICE_STREAMS} WS streams x {ALICE_CHARS} chars ({label})",
                f"bob's first audio, s ({runs})",
                f"{median_s(times)} (max {max(times):.3f})",
                f"<= {3 * statistics.median(alone[over]):.3f} (3x alone)",
            )
        )
    for label, text, speed, emoji in MEMORY_MESSAGES:
        with our_server(["piper"], 100, log_dir / "memory.log", extra, env=env) as server:
            ws_url = server.base_http.replace("http://", "ws://") + "/v1/tts/stream"
            grown_mb, audio_s = await message_memory(ws_url, server.pid, keys.bob, text, speed, emoji)
        value = f"{grown_mb:.0f} ({audio_s:.0f} s)"
        figures.append(Figure(f"one message: {label}", "peak RSS growth, MB (audio, s)", value, "< 300"))
    return figures


def measure(source: Path | None) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="local-voice-") as directory:
        return asyncio.run(measure_async(source, Path(directory)))


def main(argv: Sequence[str] | None = None) -> int:
    args = parser(__doc__.splitlines()[0] if __doc__ else None).parse_args(argv)
    print(markdown(measure(args.server_source)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

