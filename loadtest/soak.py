"""Soak: thousands of WebSocket stream cycles against a real server process, with abrupt
disconnects at random points, slow readers and half-open connections. Afterwards the server's
asyncio tasks, threads, open file descriptors and RSS must return to their baseline, and every
stream that completed must hold all its audio, once each, in order.

    python -m loadtest.soak --cycles 3000 --concurrency 20        # the long run, by hand
    python -m loadtest.soak --cycles 200 --concurrency 10         # the short one (tests/test_soak.py)

It starts `python -m stream_server` (tone provider) on a free loopback port, waits for `/readyz`,
takes one solo reference run of every text, warms up, takes the baseline, runs the cycles, lets the
server settle (polling until its figures are back at the baseline, bounded), and stops it.
Bounded: stops after `--cycles` or `--max-duration-s`, whichever comes first; every cycle has a
timeout. Prints a JSON report on stdout (progress goes to stderr) and writes it next to the
server's log; exits 1 on a leak, lost or duplicated audio, a failed cycle or a server error, and
2 when the server cannot be started.

Tasks and threads come from `/healthz` (`tasks`, `threads`); file descriptors from
`/proc/PID/fd`; RSS from `/proc/PID/status` (VmRSS). Tasks, threads and descriptors must return
exactly. RSS may stay up to `--rss-tolerance-mib` (16) above the baseline: CPython's and
numpy's allocators keep freed memory, so RSS climbs to a high-water mark over the first few hundred
cycles and then stays level (measured: +35 MiB over 500 cycles at concurrency 20, then flat for
5500 more). The warm-up before the baseline (a quarter of the cycles, at the same concurrency)
reaches that mark; `rss_timeline` in the report shows the level, where a leak would climb.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import random
import shlex
import socket
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadtest.ttfa import RESULTS_DIR, BenchmarkError, ManagedProcess, free_port, stop_on_signals, wait_until_up

STREAM_PATH: Final = "/v1/tts/stream"
SAMPLE_RATE: Final = 24000  # tone's own rate: pcm at 24 kHz, nothing resampled
FRAME_BYTES: Final = SAMPLE_RATE * 20 // 1000 * 2  # the server's default frame_ms, s16le
BYTES_PER_MS: Final = SAMPLE_RATE * 2 / 1000
SLOW_READER_RCVBUF: Final = 4096
CYCLE_TIMEOUT_S: Final = 60.0
EXIT_FAILED: Final = 1
EXIT_NO_SERVER: Final = 2

# Unambiguous sentence ends only, so a text is cut into the same segments however it is chunked
# and however late its chunks arrive (no boundary timeout can cut it differently).
SHORT_TEXTS: Final = (
    "Hello there. How are you today?",
    "The quick brown fox jumps over the lazy dog. It was not amused, and it said so loudly. Then it left.",
    "One sentence. Two sentences! Three sentences? Four.",
    "A single sentence that never gets its final stop",
    "Paragraphs are longer.\n\nThis one follows a blank line; it has a clause or two, and it ends here.",
)
LONG_TEXT: Final = " ".join(
    f"Sentence {word} of the long text keeps the audio flowing for a while, and then it ends."
    for word in ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet")
)
TEXTS: Final = (*SHORT_TEXTS, LONG_TEXT)

HANDSHAKE_REQUEST: Final = (
    "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


# -- what one stream received -------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """A solo run of one text: each segment's text and audio bytes."""

    segments: tuple[tuple[str, int], ...]
    text_chars: int


@dataclass
class Received:
    items: list[dict[str, Any] | bytes] = field(default_factory=list)
    close_code: int | None = None

    def messages(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.items if isinstance(m, dict) and m["type"] == kind]

    def frames(self) -> int:
        return sum(isinstance(m, bytes) for m in self.items)

    def segments(self) -> list[tuple[int, str, list[int]]]:
        """(seq, text, frame sizes) of every segment, in the order they arrived."""
        out: list[tuple[int, str, list[int]]] = []
        for item in self.items:
            if isinstance(item, bytes):
                if not out:
                    raise AssertionError("an audio frame before any segment")
                out[-1][2].append(len(item))
            elif item["type"] == "segment":
                out.append((item["seq"], item["text"], []))
        return out


async def receive_one(ws: ClientConnection, received: Received) -> dict[str, Any] | bytes:
    data = await ws.recv()
    item = data if isinstance(data, bytes) else json.loads(data)
    received.items.append(item)
    return item


async def receive_to_close(ws: ClientConnection, received: Received, trickle_s: float = 0.0) -> None:
    with contextlib.suppress(ConnectionClosed):
        while True:
            await receive_one(ws, received)
            if trickle_s:
                await asyncio.sleep(trickle_s)  # a slow consumer, on purpose
    received.close_code = ws.close_code


async def receive_frames(ws: ClientConnection, received: Received, count: int) -> None:
    """Until `count` audio frames have arrived (or the stream ended first)."""
    with contextlib.suppress(ConnectionClosed):
        while received.frames() < count:
            await receive_one(ws, received)


def order_problems(received: Received) -> list[str]:
    """What any stream, finished or cut off, must respect."""
    problems: list[str] = []
    if received.items and not (isinstance(received.items[0], dict) and received.items[0]["type"] == "ready"):
        problems.append("first message is not ready")
    seqs = [m["seq"] for m in received.messages("segment")]
    if seqs != sorted(set(seqs)):
        problems.append(f"segments out of order or repeated: {seqs}")
    if errors := received.messages("error"):
        problems.append(f"errors: {[e['code'] for e in errors]}")
    try:
        received.segments()
    except AssertionError as exc:
        problems.append(str(exc))
    return problems


def audio_problems(received: Received, expected: Expected) -> list[str]:
    """A stream that completed: every segment 0..n-1 once, in order, with all of its audio."""
    problems: list[str] = []
    segments = received.segments()
    got = tuple((text, sum(sizes)) for _, text, sizes in segments)
    if [seq for seq, _, _ in segments] != list(range(len(expected.segments))):
        problems.append(f"segment seqs {[seq for seq, _, _ in segments]}")
    if got != expected.segments:
        problems.append(f"segments {got} != reference {expected.segments}")
    for seq, _, sizes in segments:
        if any(size != FRAME_BYTES for size in sizes[:-1]):
            problems.append(f"segment {seq}: a frame that is not {FRAME_BYTES} bytes before its last")
    ends = received.messages("segment_end")
    if [m["seq"] for m in ends] != [seq for seq, _, _ in segments]:
        problems.append(f"segment_end seqs {[m['seq'] for m in ends]}")
    for end, (_, _, sizes) in zip(ends, segments, strict=False):
        if abs(end["audio_ms"] - sum(sizes) / BYTES_PER_MS) > 0.002:
            problems.append(f"segment_end {end['seq']}: audio_ms {end['audio_ms']} for {sum(sizes)} bytes")
    done = received.messages("done")
    total = sum(sum(sizes) for _, _, sizes in segments)
    if len(done) != 1:
        problems.append(f"{len(done)} done messages")
    elif (
        done[0]["segments"] != len(segments)
        or abs(done[0]["audio_ms"] - total / BYTES_PER_MS) > 0.01
        or done[0]["text_chars"] != expected.text_chars
    ):
        problems.append(f"done {done[0]} for {len(segments)} segments, {total} bytes")
    if received.close_code != 1000:
        problems.append(f"close code {received.close_code}")
    return problems


# -- one cycle ----------------------------------------------------------------------------------


@dataclass
class Outcome:
    behaviour: str
    completed: bool = False
    """A stream that ran to `done`, its audio checked against the reference."""
    segments: int = 0
    audio_bytes: int = 0
    lost_or_duplicated: bool = False
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Target:
    port: int
    headers: dict[str, str]
    hold_max_s: float
    references: dict[str, Expected]

    def url(self, lead_ms: int | None) -> str:
        query = "" if lead_ms is None else f"?max_lead_ms={lead_ms}"
        return f"ws://127.0.0.1:{self.port}{STREAM_PATH}{query}"

    def hold(self, rng: random.Random) -> float:
        return rng.uniform(0.02, self.hold_max_s)

    async def open(
        self, lead_ms: int | None = 0, *, small_receive_buffer: bool = False, max_queue: int = 16
    ) -> ClientConnection:
        sock = None
        if small_receive_buffer:
            # Set before connecting, so the TCP window is small from the start.
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_READER_RCVBUF)
            sock.setblocking(False)
        try:
            if sock is not None:
                await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", self.port))
            return await connect(
                self.url(lead_ms),
                additional_headers=self.headers,
                sock=sock,
                max_queue=max_queue,
                open_timeout=20,
                close_timeout=10,
            )
        except BaseException:
            if sock is not None:
                sock.close()
            raise


def chunks(text: str, rng: random.Random) -> list[str]:
    out: list[str] = []
    position = 0
    while position < len(text):
        size = rng.randint(1, 12)
        out.append(text[position : position + size])
        position += size
    return out


async def send_text(ws: ClientConnection, text: str, rng: random.Random) -> None:
    for chunk in chunks(text, rng):
        await ws.send(json.dumps({"type": "text", "text": chunk}))


async def abort(ws: ClientConnection) -> None:
    """Gone without a close frame: the TCP connection just ends (a reset if data was unread)."""
    ws.transport.abort()
    await asyncio.wait_for(ws.wait_closed(), 10)


def finish(outcome: Outcome, received: Received) -> Outcome:
    outcome.problems += order_problems(received)
    return outcome


async def complete(target: Target, rng: random.Random) -> Outcome:
    """Text in random chunks, `end`, everything read: checked against the solo run."""
    text = rng.choice(SHORT_TEXTS)
    # Unpaced mostly; paced (the server's default lead) for some: the short texts stay within it.
    received = Received()
    async with await target.open(lead_ms=rng.choice([0, 0, None])) as ws:
        await send_text(ws, text, rng)
        await ws.send('{"type":"end"}')
        await receive_to_close(ws, received)
    return checked_completion(Outcome("complete"), received, target.references[text])


def checked_completion(outcome: Outcome, received: Received, expected: Expected) -> Outcome:
    audio = audio_problems(received, expected)
    outcome.completed = True
    outcome.lost_or_duplicated = bool(audio)
    outcome.segments = len(received.messages("segment_end"))
    outcome.audio_bytes = sum(len(m) for m in received.items if isinstance(m, bytes))
    outcome.problems += audio
    return finish(outcome, received)


async def disconnect_mid_text(target: Target, rng: random.Random) -> Outcome:
    """Part of the text, no `end`, then gone (mostly without a close frame)."""
    received = Received()
    pieces = chunks(rng.choice(TEXTS), rng)
    async with await target.open() as ws:
        for piece in pieces[: rng.randint(1, len(pieces))]:
            await ws.send(json.dumps({"type": "text", "text": piece}))
        if rng.random() < 0.5:
            await receive_one(ws, received)  # ready: the server has the stream, maybe a segment in synthesis
        if rng.random() < 0.7:
            await abort(ws)
    return finish(Outcome("disconnect_mid_text"), received)


async def disconnect_mid_audio(target: Target, rng: random.Random) -> Outcome:
    received = Received()
    async with await target.open(lead_ms=rng.choice([0, None])) as ws:
        await send_text(ws, LONG_TEXT, rng)
        await ws.send('{"type":"end"}')
        await receive_frames(ws, received, rng.randint(1, 200))
        await abort(ws)
    return finish(Outcome("disconnect_mid_audio"), received)


async def disconnect_after_cancel(target: Target, rng: random.Random) -> Outcome:
    """Barge-in, and gone before (or while) the server handles it."""
    received = Received()
    async with await target.open(lead_ms=rng.choice([0, None])) as ws:
        await send_text(ws, LONG_TEXT, rng)
        if rng.random() < 0.5:
            await ws.send('{"type":"end"}')
        await receive_frames(ws, received, rng.randint(0, 60))
        await ws.send('{"type":"cancel"}')
        if rng.random() < 0.5:
            await ws.send(json.dumps({"type": "text", "text": "Sure, go ahead. "}))
        await abort(ws)
    return finish(Outcome("disconnect_after_cancel"), received)


async def slow_reader(target: Target, rng: random.Random) -> Outcome:
    """A small receive buffer and a client that stops reading for a while, then reads at a trickle
    to the end: the server must wait for it (backpressure) and still deliver everything."""
    text = LONG_TEXT if rng.random() < 0.7 else rng.choice(SHORT_TEXTS)
    received = Received()
    async with await target.open(lead_ms=0, small_receive_buffer=True, max_queue=2) as ws:
        await send_text(ws, text, rng)
        await ws.send('{"type":"end"}')
        await asyncio.sleep(target.hold(rng))  # not reading at all: the socket buffers fill up
        await receive_to_close(ws, received, trickle_s=0.001)
    return checked_completion(Outcome("slow_reader"), received, target.references[text])


async def half_open(target: Target, rng: random.Random) -> Outcome:
    """A connection that goes silent, then vanishes without a close frame."""
    variant = rng.choice(["silent_websocket", "stalled_reader", "tcp_only", "partial_handshake"])
    if variant in ("silent_websocket", "stalled_reader"):
        async with await target.open(lead_ms=0, small_receive_buffer=True, max_queue=1) as ws:
            if variant == "stalled_reader":
                # Audio on its way and nobody reading: the server is stuck in a send when the peer vanishes.
                await send_text(ws, LONG_TEXT, rng)
                await ws.send('{"type":"end"}')
            await asyncio.sleep(target.hold(rng))  # silent, on purpose
            await abort(ws)
        return Outcome("half_open")
    _, writer = await asyncio.open_connection("127.0.0.1", target.port)
    try:
        if variant == "partial_handshake":
            request = HANDSHAKE_REQUEST.format(path=STREAM_PATH, port=target.port).encode()
            writer.write(request[: rng.randint(1, len(request) - 1)])
            await writer.drain()
        await asyncio.sleep(target.hold(rng))  # silent, on purpose
    finally:
        writer.transport.abort()
    return Outcome("half_open")


async def never_config(target: Target, rng: random.Random) -> Outcome:
    """Connects and never sends a message, then leaves properly."""
    received = Received()
    async with await target.open() as ws:
        await receive_one(ws, received)  # ready
        await asyncio.sleep(target.hold(rng))  # silent, on purpose
        await ws.close()
    outcome = Outcome("never_config", problems=[] if ws.close_code == 1000 else [f"close code {ws.close_code}"])
    return finish(outcome, received)


Behaviour = Callable[[Target, random.Random], Awaitable[Outcome]]
BEHAVIOURS: Final[dict[str, Behaviour]] = {
    "complete": complete,
    "disconnect_mid_text": disconnect_mid_text,
    "disconnect_mid_audio": disconnect_mid_audio,
    "disconnect_after_cancel": disconnect_after_cancel,
    "slow_reader": slow_reader,
    "half_open": half_open,
    "never_config": never_config,
}


async def reference_run(target: Target, text: str) -> Expected:
    """A solo run: the text in one message, nothing else running."""
    received = Received()
    async with await target.open(lead_ms=0) as ws:
        await ws.send(json.dumps({"type": "text", "text": text}))
        await ws.send('{"type":"end"}')
        await receive_to_close(ws, received)
    if problems := order_problems(received) or ([] if received.close_code == 1000 else ["no close 1000"]):
        raise BenchmarkError(f"reference run of {text!r}: {problems}")
    return Expected(tuple((t, sum(sizes)) for _, t, sizes in received.segments()), len(text))


# -- running many ----------------------------------------------------------------------------


async def run_cycles(
    target: Target, *, cycles: int, concurrency: int, deadline: float, seed: str, every_behaviour_first: bool
) -> list[Outcome]:
    names = list(BEHAVIOURS)
    outcomes: list[Outcome] = []
    next_index = iter(range(cycles))

    async def worker() -> None:
        for index in next_index:
            if time.monotonic() > deadline:
                return
            rng = random.Random(f"{seed}-{index}")
            name = names[index] if every_behaviour_first and index < len(names) else rng.choice(names)
            try:
                async with asyncio.timeout(CYCLE_TIMEOUT_S):
                    outcome = await BEHAVIOURS[name](target, rng)
            except TimeoutError:
                outcome = Outcome(name, problems=[f"cycle {index}: no end within {CYCLE_TIMEOUT_S} s"])
            except (OSError, ConnectionClosed, BenchmarkError) as exc:
                outcome = Outcome(name, problems=[f"cycle {index}: {type(exc).__name__}: {exc}"])
            outcome.problems = [f"cycle {index} ({name}): {p}" for p in outcome.problems]
            outcomes.append(outcome)
            if len(outcomes) % 250 == 0:
                print(f"soak: {len(outcomes)} cycles", file=sys.stderr)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return outcomes


# -- the server's figures ----------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    tasks: int
    threads: int
    fds: int
    rss_kib: int
    streams: int

    def exact(self) -> tuple[int, int, int]:
        """What must return exactly: tasks, threads, file descriptors."""
        return (self.tasks, self.threads, self.fds)


class Probe:
    """Samples the server process. One keep-alive HTTP connection, so that the probe's own socket
    is the same one (or one like it) in every sample."""

    def __init__(self, port: int, pid: int, headers: dict[str, str]) -> None:
        self._client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=10)
        self._pid = pid
        self.peak: dict[str, int] = {}
        self.timeline: list[tuple[float, int, int]] = []
        """(seconds, RSS KiB, open streams) while the cycles run: a leak climbs, a high-water mark levels off."""

    async def sample(self) -> Figures:
        health = (await self._client.get("/healthz")).raise_for_status().json()
        figures = Figures(
            tasks=health["tasks"],
            threads=health["threads"],
            fds=len(list(Path(f"/proc/{self._pid}/fd").iterdir())),
            rss_kib=_vm_rss_kib(self._pid),
            streams=health["streams"],
        )
        for name, value in asdict(figures).items():
            self.peak[name] = max(self.peak.get(name, value), value)
        return figures

    async def steady(self, timeout_s: float, want: Figures | None = None) -> tuple[Figures, float, bool]:
        """Poll until no stream is open and the exact figures hold still (or equal `want`)."""
        started = time.monotonic()
        previous: tuple[int, int, int] | None = None
        stable = 0
        while True:
            figures = await self.sample()
            if figures.streams == 0:
                if want is not None and figures.exact() == want.exact():
                    return figures, time.monotonic() - started, True
                stable = stable + 1 if figures.exact() == previous else 0
                if want is None and stable >= 3:
                    return figures, time.monotonic() - started, True
                previous = figures.exact()
            if time.monotonic() - started > timeout_s:
                return figures, time.monotonic() - started, False
            await asyncio.sleep(0.2)  # polling a state from outside the process

    async def watch(self, stop: asyncio.Event) -> None:
        """Samples during the run, for the peak figures."""
        started = time.monotonic()
        while not stop.is_set():
            with contextlib.suppress(httpx.HTTPError):
                figures = await self.sample()
                self.timeline.append((round(time.monotonic() - started, 1), figures.rss_kib, figures.streams))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)

    async def aclose(self) -> None:
        await self._client.aclose()


def _vm_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise BenchmarkError("no VmRSS in /proc/PID/status")


# -- the whole soak ----------------------------------------------------------------------------


def server_argv(port: int, extra: Sequence[str]) -> list[str]:
    return [
        sys.executable, "-m", "stream_server",
        "--providers", "tone", "--provider", "tone",
        "--host", "127.0.0.1", "--port", str(port),
        "--log-level", "warning",
        *extra,
    ]  # fmt: skip


def error_lines(log: Path) -> list[str]:
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines() if log.exists() else []
    return [line for line in lines if '"level":"error"' in line or '"level":"critical"' in line or "Traceback" in line]


def summarize(outcomes: list[Outcome]) -> dict[str, Any]:
    problems = [p for o in outcomes for p in o.problems]
    completed = [o for o in outcomes if o.completed]
    return {
        "behaviours": dict(sorted(Counter(o.behaviour for o in outcomes).items())),
        "completed_streams": len(completed),
        "completed_segments": sum(o.segments for o in completed),
        "completed_audio_s": round(sum(o.audio_bytes for o in completed) / BYTES_PER_MS / 1000, 1),
        "lost_or_duplicated_streams": sum(o.lost_or_duplicated for o in completed),
        "failed_cycles": sum(bool(o.problems) for o in outcomes),
        "problem_samples": problems[:20],
    }


async def soak(args: argparse.Namespace, process: ManagedProcess, port: int) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    probe = Probe(port, process.pid, headers)
    try:
        target = Target(port, headers, args.hold_max_s, {})
        for text in TEXTS:
            target.references[text] = await reference_run(target, text)
        warm_deadline = time.monotonic() + args.max_duration_s
        warm = await run_cycles(
            target, cycles=args.warmup_cycles, concurrency=args.concurrency, deadline=warm_deadline,
            seed=f"{args.seed}-warmup", every_behaviour_first=True,
        )  # fmt: skip
        baseline, _, baseline_steady = await probe.steady(args.settle_timeout_s)
        probe.peak.clear()

        stop_watching = asyncio.Event()
        watcher = asyncio.create_task(probe.watch(stop_watching))
        started = time.monotonic()
        outcomes = await run_cycles(
            target, cycles=args.cycles, concurrency=args.concurrency, deadline=started + args.max_duration_s,
            seed=str(args.seed), every_behaviour_first=True,
        )  # fmt: skip
        duration = time.monotonic() - started
        stop_watching.set()
        await watcher
        peak = dict(probe.peak)

        after, settle_s, settled = await probe.steady(args.settle_timeout_s, want=baseline)
    finally:
        await probe.aclose()
    rss_tolerance_kib = args.rss_tolerance_mib * 1024
    leaks = {
        "tasks": after.tasks - baseline.tasks,
        "threads": after.threads - baseline.threads,
        "fds": after.fds - baseline.fds,
        "rss_kib": after.rss_kib - baseline.rss_kib,
    }
    return {
        "cycles_requested": args.cycles,
        "cycles_run": len(outcomes),
        "concurrency": args.concurrency,
        "duration_s": round(duration, 2),
        "cycles_per_s": round(len(outcomes) / duration, 1) if duration else None,
        "warmup_cycles": len(warm),
        "warmup_failed_cycles": sum(bool(o.problems) for o in warm),
        **summarize(outcomes),
        "baseline": asdict(baseline),
        "baseline_steady": baseline_steady,
        "peak": peak,
        "rss_timeline": [list(point) for point in probe.timeline[:: max(1, len(probe.timeline) // 20)]],
        "after": asdict(after),
        "settled": settled,
        "settle_s": round(settle_s, 2),
        "growth": leaks,
        "rss_tolerance_kib": rss_tolerance_kib,
        "leaked": [name for name in ("tasks", "threads", "fds") if leaks[name]]
        + (["rss"] if leaks["rss_kib"] > rss_tolerance_kib else []),
    }


def verdict(report: dict[str, Any]) -> bool:
    return (
        not report["leaked"]
        and report["lost_or_duplicated_streams"] == 0
        and report["failed_cycles"] == 0
        and report["warmup_failed_cycles"] == 0
        and report["cycles_run"] > 0
        and not report["server_errors"]
        and report["server_alive_after_soak"]
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m loadtest.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=2000, help="stream cycles to run (default 2000)")
    parser.add_argument("--concurrency", type=int, default=20, help="cycles at once (default 20)")
    parser.add_argument("--max-duration-s", type=float, default=900, help="stop starting cycles after this long")
    parser.add_argument(
        "--warmup-cycles", type=int, default=0, help="before the baseline (default: a quarter of --cycles, 4..1000 x)"
    )
    parser.add_argument("--hold-max-s", type=float, default=0.5, help="longest silence of a half-open or slow client")
    parser.add_argument("--settle-timeout-s", type=float, default=30, help="longest wait for the figures to return")
    parser.add_argument("--rss-tolerance-mib", type=float, default=16, help="RSS allowed above the baseline")
    parser.add_argument("--seed", default="1", help="random seed (the cycles are reproducible per seed)")
    parser.add_argument("--api-key", help="sent as Authorization: Bearer, when the server has keys")
    parser.add_argument("--server-arg", action="append", default=[], help="extra argument for the server (repeat it)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="where the report and server log go")
    args = parser.parse_args(argv)
    if args.cycles < 1 or not 1 <= args.concurrency <= 150:
        parser.error("--cycles must be >= 1 and --concurrency 1..150 (the server's --max-streams is 200)")
    # Long enough for the allocator's high-water mark: RSS climbs over the first few hundred
    # cycles, then stays level however many follow (see `rss_timeline` in the report).
    args.warmup_cycles = args.warmup_cycles or max(4 * args.concurrency, min(args.cycles // 4, 1000))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    args.results_dir.mkdir(parents=True, exist_ok=True)
    log_path = args.results_dir / f"soak-{stamp}.server.log"
    port = free_port()
    argv_server = server_argv(port, args.server_arg)
    report: dict[str, Any] = {
        "command": shlex.join([Path(sys.executable).name, "-m", "loadtest.soak", *(argv or sys.argv[1:])]),
        "server_command": shlex.join(argv_server),
        "seed": args.seed,
        "server_log": str(log_path),
    }
    with stop_on_signals(), ManagedProcess("stream_server", argv_server, log_path) as process:
        try:
            wait_until_up(f"http://127.0.0.1:{port}/readyz", process, timeout_s=60)
        except BenchmarkError as exc:
            print(f"soak: the server did not start: {exc}", file=sys.stderr)
            return EXIT_NO_SERVER
        report["server_pid"] = process.pid
        report.update(asyncio.run(soak(args, process, port)))
        report["server_alive_after_soak"] = process.returncode() is None
        process.stop()
        report["server_exit_code"] = process.returncode()
    report["server_errors"] = error_lines(log_path)[:10]
    report["ok"] = verdict(report)
    text = json.dumps(report, indent=2)
    (args.results_dir / f"soak-{stamp}.json").write_text(text + "\n")
    print(text)
    return 0 if report["ok"] else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
