"""Time to first audio through the vendor-protocol adapters vs this server's own protocol.

A server with the `tone` provider (instant, so the figures are the server's and the adapter's
own) runs in a subprocess on loopback. Each run opens a fresh connection, waits for its first
message (`ready` / `Metadata`), then sends one sentence and a flush and times the first audio
byte. Protocols are interleaved run by run, so drift hits them alike:

- ``ours``:            `/v1/tts/stream`, `text` + `flush`
- ``deepgram``:        `/v1/speak` WebSocket, `Speak` + `Flush`
- ``deepgram_rest``:   `POST /v1/speak`, to the first body byte (connection made before the clock)
- ``cartesia``:        `/tts/websocket`, one context's `transcript` + `flush` to its first `chunk`
                       (Cartesia sends no first message: the clock starts once connected)
- ``cartesia_bytes``:  `POST /tts/bytes`, like the other REST calls
- ``openai_rest``:     `POST /v1/audio/speech` (pcm), the same way, for reference
- ``elevenlabs``:      `/v1/text-to-speech/{voice}/multi-stream-input`, a context's text + `flush`
- ``elevenlabs_rest``: `POST /v1/text-to-speech/{voice}/stream`, to the first body byte
- ``livekit``:         LiveKit's deepgram plugin, `push_text` + `flush` to its first audio frame
                       (connection pooled and warm), when the `compat` extra is installed

    python -m loadtest.compat_ttfa --runs 200      # from the repository root
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import httpx
from websockets.asyncio.client import connect

from loadtest.load.stats import summarize

SENTENCE = "Hello there, this is the first sentence."
MODEL = "aura-2-thalia-en"
VOICE = "beep"  # the tone provider's, as ElevenLabs' voice_id


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.asynccontextmanager
async def tone_server() -> AsyncIterator[str]:
    port = _free_port()
    command = [
        sys.executable, "-m", "stream_server", "--host", "127.0.0.1", "--port", str(port), "--providers", "tone",
        "--provider", "tone", "--max-lead-ms", "0", "--log-level", "warning",
    ]  # fmt: skip
    server = subprocess.Popen(command)
    base = f"127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client:
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"http://{base}/readyz")).status_code == 200:
                        break
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the server did not start")
                await asyncio.sleep(0.1)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


async def ours(base: str) -> float:
    async with connect(f"ws://{base}/v1/tts/stream?format=pcm&sample_rate=24000") as ws:
        await ws.recv()  # ready
        started = time.perf_counter()
        await ws.send(json.dumps({"type": "text", "text": SENTENCE}))
        await ws.send(json.dumps({"type": "flush"}))
        while not isinstance(await ws.recv(), bytes):
            pass
        return time.perf_counter() - started


async def deepgram(base: str) -> float:
    async with connect(f"ws://{base}/v1/speak?model={MODEL}&encoding=linear16&sample_rate=24000") as ws:
        await ws.recv()  # Metadata
        started = time.perf_counter()
        await ws.send(json.dumps({"type": "Speak", "text": SENTENCE}))
        await ws.send(json.dumps({"type": "Flush"}))
        while not isinstance(await ws.recv(), bytes):
            pass
        return time.perf_counter() - started


CARTESIA_REQUEST = {
    "model_id": "sonic-2",
    "voice": {"mode": "id", "id": "a0e99841-438c-4a64-b679-ae501e7d6091"},
    "output_format": {"container": "raw", "encoding": "pcm_s16le", "sample_rate": 24000},
    "transcript": SENTENCE,
}


async def cartesia(base: str) -> float:
    async with connect(f"ws://{base}/tts/websocket?cartesia_version=2025-04-16") as ws:
        started = time.perf_counter()
        await ws.send(json.dumps({**CARTESIA_REQUEST, "context_id": "c", "continue": True, "flush": True}))
        while json.loads(await ws.recv())["type"] != "chunk":
            pass
        return time.perf_counter() - started


async def elevenlabs(base: str) -> float:
    query = "model_id=eleven_flash_v2_5&output_format=pcm_24000"
    async with connect(f"ws://{base}/v1/text-to-speech/{VOICE}/multi-stream-input?{query}") as ws:
        await ws.send(json.dumps({"text": " ", "context_id": "c"}))  # no first message comes back: open first
        started = time.perf_counter()
        await ws.send(json.dumps({"text": SENTENCE, "context_id": "c", "flush": True}))
        while "audio" not in json.loads(await ws.recv()):
            pass
        return time.perf_counter() - started


def _rest(path: str, params: dict[str, str], body: dict[str, object]) -> Callable[[str], Awaitable[float]]:
    async def run(base: str) -> float:
        async with httpx.AsyncClient() as client:
            await client.get(f"http://{base}/healthz")  # the connection, before the clock
            started = time.perf_counter()
            async with client.stream("POST", f"http://{base}{path}", params=params, json=body) as response:
                async for chunk in response.aiter_bytes():
                    if chunk:
                        return time.perf_counter() - started
        raise RuntimeError(f"{path}: no audio")

    return run


deepgram_rest = _rest("/v1/speak", {"model": MODEL, "encoding": "linear16", "container": "none"}, {"text": SENTENCE})
cartesia_bytes = _rest("/tts/bytes", {}, CARTESIA_REQUEST)
elevenlabs_rest = _rest(f"/v1/text-to-speech/{VOICE}/stream", {"output_format": "pcm_24000"}, {"text": SENTENCE})
openai_rest = _rest(
    "/v1/audio/speech", {}, {"model": "tts-1", "voice": "alloy", "input": SENTENCE, "response_format": "pcm"}
)


async def livekit_runs(base: str, runs: int) -> list[float] | None:
    try:
        import aiohttp
        from livekit.plugins import deepgram as livekit_deepgram
    except ImportError:
        return None
    times: list[float] = []
    async with aiohttp.ClientSession() as http:
        tts = livekit_deepgram.TTS(model=MODEL, api_key="unused", base_url=f"http://{base}/v1/speak", http_session=http)
        for index in range(runs + 1):
            stream = tts.stream()
            started = time.perf_counter()
            stream.push_text(SENTENCE)
            stream.flush()
            stream.end_input()
            first: float | None = None
            async for _ in stream:
                first = first or time.perf_counter() - started
            if index and first is not None:  # the first run makes the pooled connection
                times.append(first)
        await tts.aclose()
    return times


async def measure(runs: int) -> dict[str, dict[str, float | int | None]]:
    probes = {
        "ours": ours, "deepgram": deepgram, "deepgram_rest": deepgram_rest, "cartesia": cartesia,
        "cartesia_bytes": cartesia_bytes, "elevenlabs": elevenlabs, "elevenlabs_rest": elevenlabs_rest,
        "openai_rest": openai_rest,
    }  # fmt: skip
    times: dict[str, list[float]] = {name: [] for name in probes}
    async with tone_server() as base:
        for name, probe in probes.items():
            await probe(base)  # warm-up
        for _ in range(runs):
            for name, probe in probes.items():
                times[name].append(await probe(base))
        if (livekit := await livekit_runs(base, runs)) is not None:
            times["livekit"] = livekit
    return {name: summarize([t * 1000 for t in values]) for name, values in times.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100, help="measured runs per protocol")
    args = parser.parse_args(argv)
    results = asyncio.run(measure(args.runs))
    print(f"first audio, ms ({args.runs} runs each; tone provider)")
    print(f"{'protocol':<16} {'p50':>8} {'p90':>8} {'p99':>8}")
    for name, figures in results.items():
        print(f"{name:<16} {figures['p50']:>8} {figures['p90']:>8} {figures['p99']:>8}")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
