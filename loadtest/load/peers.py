"""Time to first audio for one paragraph from our server, Piper's own HTTP server and wyoming-piper.

Each client sends the same five-sentence paragraph (`loadtest.ttfa.PARAGRAPH`) whole, as a
client of each would, and times its request to the first byte of audio:

- ours: one `text` message and `end` over the WebSocket (pcm, unpaced) -> first binary frame
  (`loadtest.ttfa.stream_once`);
- Piper's HTTP server (`python -m piper.http_server -m MODEL`): `POST /synthesize` -> first body
  byte of the WAV it answers once the whole text is synthesized (`loadtest.ttfa.post_once`);
- wyoming-piper (`python -m wyoming_piper --voice MODEL`), and ours over Wyoming (`--wyoming-uri`):
  a Wyoming `synthesize` event over TCP -> first `audio-chunk` event. It splits the text into sentences and sends each one's audio when it
  is synthesized, but synthesizes in its event loop under one global lock, so concurrent clients
  wait for each other.

`concurrent` clients start together; every figure is one client's request -> first audio.
"""

from __future__ import annotations

import asyncio
import importlib.util
import shlex
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

from loadtest.ttfa import PARAGRAPH, BenchmarkError, ManagedProcess, TokenPlan, free_port, post_once, stream_once

from .stats import summarize

TIMEOUT_S = 120.0


async def ours_first_audio_ms(base_ws: str) -> float:
    query = urlencode({"provider": "piper", "format": "pcm", "max_lead_ms": 0})
    outcome = await stream_once(
        f"{base_ws}/v1/tts/stream?{query}", TokenPlan((PARAGRAPH,), reference=0), 0.0, TIMEOUT_S, None
    )
    return outcome.ms_after_sent(outcome.first_audio_at)


async def piper_http_first_audio_ms(base_http: str) -> float:
    times = await asyncio.to_thread(post_once, base_http, PARAGRAPH, TIMEOUT_S)
    return times.first_body_byte_ms


async def wyoming_first_audio_ms(host: str, port: int) -> float:
    from wyoming.audio import AudioChunk, AudioStop
    from wyoming.client import AsyncTcpClient
    from wyoming.tts import Synthesize

    first: float | None = None
    async with asyncio.timeout(TIMEOUT_S), AsyncTcpClient(host, port) as client:
        started = time.perf_counter()
        await client.write_event(Synthesize(text=PARAGRAPH).event())
        while True:
            event = await client.read_event()
            if event is None:
                raise BenchmarkError(f"the Wyoming server on port {port} closed the connection before audio-stop")
            if AudioChunk.is_type(event.type) and first is None:
                first = (time.perf_counter() - started) * 1000.0
            elif AudioStop.is_type(event.type):
                break
    if first is None:
        raise BenchmarkError(f"the Wyoming server on port {port} sent no audio")
    return first


async def measure(
    once: Callable[[], Awaitable[float]], concurrent: int, rounds: int, warmup: int = 1
) -> dict[str, float | int | None]:
    """`rounds` rounds of `concurrent` clients at once (after `warmup` single requests)."""
    for _ in range(warmup):
        await once()
    samples: list[float] = []
    for _ in range(rounds):
        samples += await asyncio.gather(*(once() for _ in range(concurrent)))
    return summarize(samples)


def wait_tcp(host: str, port: int, process: ManagedProcess, timeout_s: float) -> None:
    import socket

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.returncode() is not None:
            raise BenchmarkError(f"{process.name} exited:\n{process.log_tail()}")
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.2)
    raise BenchmarkError(f"{process.name} did not listen on {host}:{port} within {timeout_s:.0f} s")


@contextmanager
def piper_http_server(model: Path, log_path: Path) -> Iterator[tuple[str, str]]:
    """(base URL, command). Needs Flask (`piper-tts[http]`, in the `loadtest` extra)."""
    if importlib.util.find_spec("flask") is None:
        raise BenchmarkError("Flask is not installed: pip install 'piper-tts[http]' (the loadtest extra)")
    from loadtest.ttfa import wait_until_up

    port = free_port()
    argv = [sys.executable, "-m", "piper.http_server", "-m", str(model), "--host", "127.0.0.1", "--port", str(port)]
    with ManagedProcess("piper.http_server", argv, log_path) as process:
        base = f"http://127.0.0.1:{port}"
        wait_until_up(f"{base}/info", process, 120.0)
        yield base, shlex.join(argv)


@contextmanager
def wyoming_piper_server(model: Path, log_path: Path) -> Iterator[tuple[int, str]]:
    """(port, command). The voice is given by its path, so nothing is looked up or downloaded;
    `--data-dir` (required by its command line) is an empty temporary folder."""
    if importlib.util.find_spec("wyoming_piper") is None:
        raise BenchmarkError("wyoming-piper is not installed: pip install wyoming-piper (the loadtest extra)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="wyoming-piper-") as data_dir:
        argv = [
            sys.executable, "-m", "wyoming_piper", "--voice", str(model), "--data-dir", data_dir,
            "--uri", f"tcp://127.0.0.1:{port}",
        ]  # fmt: skip
        with ManagedProcess("wyoming_piper", argv, log_path) as process:
            wait_tcp("127.0.0.1", port, process, 120.0)
            yield port, shlex.join(argv)
