"""Time to first audio (TTFA) of stream_server over its WebSocket API, against Piper's own HTTP server.

Benchmarks (each: warm-up iterations, then N measured ones, each on a fresh connection; see
loadtest/README.md for how to read them):

- ``stream``:     an LLM is simulated: the paragraph is sent word by word, one `text` message per
                  token. TTFA = from sending the token that completes the first sentence (the one
                  carrying its final period and the following space) to the first binary frame.
                  The server's own `done.ttfa_ms` is kept beside it. Per provider (tone, piper).
- ``paragraph``:  the same five-sentence paragraph as one `text` message, then `end`: from
                  sending it to the first audio frame, and to the last one. Per provider.
- ``piper-http``: Piper's own Flask server (`python -m piper.http_server`), started here; the
                  paragraph is POSTed to /synthesize: time to the first response byte and to the
                  complete WAV.
- ``raw``:        Piper in this process, no server (voice loaded by stream_server's own
                  `load_voice`): time to synthesize the ten-word first sentence, and the paragraph.

Every subprocess started here is stopped on exit, on error, on Ctrl-C and on SIGTERM/SIGHUP.

    python -m loadtest.ttfa --iterations 30   # from the repository root
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import functools
import importlib.util
import io
import json
import math
import os
import platform
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import wave
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, Self
from urllib.parse import urlencode, urlsplit

import httpx
from websockets.asyncio.client import ClientConnection, connect

if TYPE_CHECKING:
    from piper import PiperVoice, SynthesisConfig

LOADTEST_DIR: Final = Path(__file__).resolve().parent
REPO_ROOT: Final = LOADTEST_DIR.parent
RESULTS_DIR: Final = LOADTEST_DIR / "results"

if __package__ in (None, ""):
    # `python loadtest/ttfa.py`: make `stream_server` importable from the work tree.
    sys.path.insert(0, str(REPO_ROOT))

STREAM_PATH: Final = "/v1/tts/stream"

# Ten words; its last token, "river. ", completes it.
FIRST_SENTENCE: Final = "The old lighthouse keeper walked slowly down to the river."
PARAGRAPH: Final = " ".join(  # noqa: FLY002 - one sentence a line reads better
    (
        FIRST_SENTENCE,
        "He carried a lantern, a coil of rope and a small wooden box.",
        "Nobody in the village knew what he kept inside it.",
        "Some said it held letters from a ship that never came home.",
        "Tonight, for the first time in years, he meant to open it.",
    )
)

Completion = Literal["joined", "split"]
BENCHMARKS: Final = ("stream", "paragraph", "piper-http", "raw")
PROVIDERS: Final = ("tone", "piper")


class BenchmarkError(RuntimeError):
    """An iteration did not go as the protocol says (wrong segment, error message, bad close...)."""


# -- text ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenPlan:
    tokens: tuple[str, ...]
    reference: int
    """Index of the token from whose sending TTFA is measured."""


def llm_tokens(completion: Completion) -> TokenPlan:
    """The paragraph as LLM-like tokens: each word with the whitespace that follows it.

    joined: "river. " is one token, and TTFA counts from it.
    split:  "river." then " "; the segmenter can only decide the sentence end once it sees the
            whitespace after the period, so TTFA counts from the " " token.
    """
    words = re.findall(r"\S+\s*", PARAGRAPH)
    first_count = len(FIRST_SENTENCE.split())
    if completion == "joined":
        return TokenPlan(tuple(words), reference=first_count - 1)
    last = words[first_count - 1]
    word, space = last.rstrip(), last[len(last.rstrip()) :]
    return TokenPlan((*words[: first_count - 1], word, space, *words[first_count:]), reference=first_count)


# -- statistics ------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default method)."""
    if not sorted_values:
        return math.nan
    position = (len(sorted_values) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


@dataclass(frozen=True, slots=True)
class Stats:
    n: int
    median: float
    p90: float
    p99: float
    min: float
    max: float
    mean: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Stats:
        ordered = sorted(values)
        return cls(
            n=len(ordered),
            median=percentile(ordered, 50),
            p90=percentile(ordered, 90),
            p99=percentile(ordered, 99),
            min=ordered[0] if ordered else math.nan,
            max=ordered[-1] if ordered else math.nan,
            mean=sum(ordered) / len(ordered) if ordered else math.nan,
        )

    def as_dict(self) -> dict[str, float | int]:
        return {
            "n": self.n,
            "median": round(self.median, 3),
            "p90": round(self.p90, 3),
            "p99": round(self.p99, 3),
            "min": round(self.min, 3),
            "max": round(self.max, 3),
            "mean": round(self.mean, 3),
        }


@dataclass(slots=True)
class Series:
    """One measured quantity of one benchmark: a value in ms per measured iteration."""

    key: str
    label: str
    samples: list[float] = field(default_factory=list)
    server_ttfa: list[float] = field(default_factory=list)
    """The server's own `done.ttfa_ms` of the same iterations, when it reports one."""
    other_cpu: list[float] = field(default_factory=list)
    """Per iteration: CPU % used meanwhile by processes that are not ours (see `Load`)."""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "label": self.label,
            "stats_ms": Stats.of(self.samples).as_dict(),
            "samples_ms": [round(s, 3) for s in self.samples],
        }
        if self.server_ttfa:
            out["server_ttfa_stats_ms"] = Stats.of(self.server_ttfa).as_dict()
            out["server_ttfa_samples_ms"] = [round(s, 3) for s in self.server_ttfa]
        if self.other_cpu:
            out["other_cpu_pct_samples"] = [round(s, 1) for s in self.other_cpu]
        return out


@dataclass(slots=True)
class Run:
    """Everything a run produced: series in the order they are reported, plus context."""

    series: list[Series] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    own_pids: set[int] = field(default_factory=lambda: {os.getpid()})
    """This script and the servers it started: their CPU time is not 'other' load."""
    noisy_starts: int = 0
    """Iterations started although the machine did not become quiet within --quiet-wait."""

    def get(self, key: str) -> Series | None:
        return next((s for s in self.series if s.key == key), None)


# -- other load on the machine ---------------------------------------------------------------
#
# The machine may be shared (test runs, other servers). Every iteration records how much CPU
# processes other than ours used while it ran, and by default waits for a quiet moment before
# it starts, so a disturbed figure is visible and less likely. Linux only (/proc); elsewhere
# there is no figure and no waiting.


@dataclass(frozen=True, slots=True)
class CpuSnapshot:
    at: float
    busy_ticks: int
    own_ticks: int


def _busy_ticks() -> int:
    # "cpu  user nice system idle iowait irq softirq steal ..."
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return user + nice + system + irq + softirq + steal


def _process_ticks(pid: int) -> int:
    try:
        after_name = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0
    return int(after_name[11]) + int(after_name[12])  # utime + stime, all threads


def cpu_snapshot(pids: set[int]) -> CpuSnapshot | None:
    try:
        return CpuSnapshot(time.monotonic(), _busy_ticks(), sum(_process_ticks(p) for p in pids))
    except (OSError, ValueError, IndexError):
        return None


def other_cpu_pct(before: CpuSnapshot | None, after: CpuSnapshot | None) -> float | None:
    """CPU used between two snapshots by processes that are not ours; 100 = every core busy."""
    if before is None or after is None:
        return None
    capacity = (after.at - before.at) * os.sysconf("SC_CLK_TCK") * (os.cpu_count() or 1)
    other = (after.busy_ticks - before.busy_ticks) - (after.own_ticks - before.own_ticks)
    return max(0.0, 100.0 * other / capacity) if capacity > 0 else None


def settle(run: Run, args: argparse.Namespace) -> None:
    """Pause between iterations; with --quiet-below, until other processes are (nearly) idle.

    Blocking on purpose: nothing of ours is in flight between two iterations.
    """
    window = args.pause_ms / 1000.0
    deadline = time.monotonic() + args.quiet_wait
    while True:
        before = cpu_snapshot(run.own_pids)
        time.sleep(window)
        other = other_cpu_pct(before, cpu_snapshot(run.own_pids))
        if args.quiet_below <= 0 or other is None or other < args.quiet_below:
            return
        if time.monotonic() >= deadline:
            run.noisy_starts += 1
            return


def iterations(run: Run, args: argparse.Namespace, series: Sequence[Series]) -> Iterator[bool]:
    """Drive one benchmark: yields once per iteration, True when it is measured (not warm-up).

    Between yields: settle before the next iteration, record the other load during the last.
    """
    total = args.warmup + args.iterations
    for index in range(total):
        settle(run, args)
        before = cpu_snapshot(run.own_pids)
        measured = index >= args.warmup
        yield measured
        other = other_cpu_pct(before, cpu_snapshot(run.own_pids))
        if measured and other is not None:
            for s in series:
                s.other_cpu.append(other)
        progress(series[0].label, index, total, args.warmup)


def progress(label: str, index: int, total: int, warmup: int) -> None:
    """One line per benchmark on stderr: rewritten in place on a terminal, else printed at the end."""
    last = index == total - 1
    if not (last or sys.stderr.isatty()):
        return
    phase = "warm-up" if index < warmup else "measured"
    print(f"\r  {label:<46} {index + 1:>3}/{total} ({phase})", end="\n" if last else "", file=sys.stderr, flush=True)


# -- subprocesses ----------------------------------------------------------------------------


class ManagedProcess:
    """A child process in its own process group, stopped (TERM, then KILL) when the block exits."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:  # the child keeps its own descriptor
            self._proc = subprocess.Popen(
                self.argv,
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own group: Ctrl-C reaches only us, and we stop it ourselves.
                start_new_session=True,
            )
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def returncode(self) -> int | None:
        assert self._proc is not None
        return self._proc.poll()

    def stop(self, grace_s: float = 10.0) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        self._signal_group(signal.SIGTERM)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            proc.wait()

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)  # the child's own group (start_new_session): only what we started

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(url: str, process: ManagedProcess | None, timeout_s: float) -> None:
    """Poll `url` until it answers 200; fail at once if the process died."""
    deadline = time.monotonic() + timeout_s
    while True:
        if process is not None and (code := process.returncode()) is not None:
            raise BenchmarkError(f"{process.name} exited with {code} before answering {url}:\n{process.log_tail()}")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            tail = process.log_tail() if process is not None else ""
            raise BenchmarkError(f"{url} did not answer 200 within {timeout_s:.0f} s\n{tail}")
        time.sleep(0.1)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGTERM/SIGHUP become SystemExit, so every `with ManagedProcess` block stops its child."""

    def raise_exit(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, raise_exit) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# -- our server over WebSocket ---------------------------------------------------------------


@dataclass(slots=True)
class StreamOutcome:
    sent_at: float = math.nan
    """perf_counter() just before the reference token was sent."""
    first_audio_at: float | None = None
    last_audio_at: float | None = None
    audio_bytes: int = 0
    first_segment_text: str | None = None
    done: dict[str, Any] | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None

    def ms_after_sent(self, at: float | None) -> float:
        if at is None:
            raise BenchmarkError("no audio frame was received")
        return (at - self.sent_at) * 1000.0

    @property
    def server_ttfa_ms(self) -> float | None:
        value = (self.done or {}).get("ttfa_ms")
        return None if value is None else float(value)

    def check(self) -> None:
        if self.errors:
            raise BenchmarkError(f"server sent errors: {self.errors}")
        if self.close_code != 1000:
            raise BenchmarkError(f"server closed with {self.close_code}, not 1000")
        if self.done is None:
            raise BenchmarkError("no `done` message")
        if self.first_audio_at is None:
            raise BenchmarkError("no audio frame")
        if self.first_audio_at < self.sent_at:
            raise BenchmarkError("audio arrived before the first sentence was complete")
        if self.first_segment_text != FIRST_SENTENCE:
            raise BenchmarkError(f"first segment was {self.first_segment_text!r}, not the first sentence")


def stream_url(base_ws: str, provider: str) -> str:
    # Unpaced (max_lead_ms=0): the "last audio" rows measure how fast the server makes the audio,
    # as Piper's HTTP server does, not how fast a listener plays it.
    query = {"provider": provider, "format": "pcm", "max_lead_ms": 0}
    return f"{base_ws}{STREAM_PATH}?{urlencode(query)}"


async def _receive(ws: ClientConnection, outcome: StreamOutcome) -> None:
    async for message in ws:  # ends when the server closes normally
        now = time.perf_counter()
        if isinstance(message, bytes):
            if outcome.first_audio_at is None:
                outcome.first_audio_at = now
            outcome.last_audio_at = now
            outcome.audio_bytes += len(message)
            continue
        payload = json.loads(message)
        kind = payload.get("type")
        if kind == "segment" and outcome.first_segment_text is None:
            outcome.first_segment_text = payload.get("text")
        elif kind == "done":
            outcome.done = payload
        elif kind == "error":
            outcome.errors.append(payload)
    outcome.close_code = ws.close_code


async def stream_once(
    url: str, plan: TokenPlan, interval_s: float, timeout_s: float, compression: str | None
) -> StreamOutcome:
    """One fresh connection: wait for `ready`, send the tokens and `end`, read until the close.

    Reading runs concurrently with sending, as a real client's would: tokens keep coming while
    the first audio is on its way.
    """
    outcome = StreamOutcome()
    async with asyncio.timeout(timeout_s):
        async with connect(url, compression=compression, max_size=None, ping_interval=None) as ws:
            ready = json.loads(await ws.recv())
            if ready.get("type") != "ready":
                raise BenchmarkError(f"expected ready, got {ready}")
            receiver = asyncio.create_task(_receive(ws, outcome))
            try:
                for index, token in enumerate(plan.tokens):
                    if index == plan.reference:
                        outcome.sent_at = time.perf_counter()
                    await ws.send(json.dumps({"type": "text", "text": token}))
                    if interval_s > 0 and index < len(plan.tokens) - 1:
                        await asyncio.sleep(interval_s)
                await ws.send(json.dumps({"type": "end"}))
                await receiver
            finally:
                receiver.cancel()
                await asyncio.gather(receiver, return_exceptions=True)
    outcome.check()
    return outcome


@dataclass(frozen=True, slots=True)
class WsTarget:
    base_ws: str
    compression: str | None


async def bench_stream(target: WsTarget, provider: str, args: argparse.Namespace, run: Run) -> None:
    plan = llm_tokens(args.completion)
    ttfa = Series(f"stream.{provider}", f"ours {provider}: streamed tokens -> TTFA")
    for measured in iterations(run, args, [ttfa]):
        outcome = await stream_once(
            stream_url(target.base_ws, provider),
            plan,
            args.token_interval_ms / 1000.0,
            args.timeout,
            target.compression,
        )
        if measured:
            ttfa.samples.append(outcome.ms_after_sent(outcome.first_audio_at))
            if (server_ttfa := outcome.server_ttfa_ms) is not None:
                ttfa.server_ttfa.append(server_ttfa)
    run.series.append(ttfa)


async def bench_paragraph(target: WsTarget, provider: str, args: argparse.Namespace, run: Run) -> None:
    plan = TokenPlan((PARAGRAPH,), reference=0)
    first = Series(f"paragraph.{provider}.first_audio", f"ours {provider}: paragraph, 1 msg -> 1st audio")
    last = Series(f"paragraph.{provider}.complete", f"ours {provider}: paragraph, 1 msg -> last audio")
    audio_ms: list[float] = []
    for measured in iterations(run, args, [first, last]):
        outcome = await stream_once(stream_url(target.base_ws, provider), plan, 0.0, args.timeout, target.compression)
        if measured:
            first.samples.append(outcome.ms_after_sent(outcome.first_audio_at))
            last.samples.append(outcome.ms_after_sent(outcome.last_audio_at))
            if (server_ttfa := outcome.server_ttfa_ms) is not None:
                first.server_ttfa.append(server_ttfa)
            audio_ms.append(float((outcome.done or {}).get("audio_ms", math.nan)))
    run.series += [first, last]
    run.info[f"paragraph.{provider}.audio_ms_median"] = round(Stats.of(audio_ms).median, 1)


async def negotiated_extensions(url: str, compression: str | None) -> str:
    async with connect(url, compression=compression, max_size=None, ping_interval=None) as ws:
        assert ws.response is not None
        return ws.response.headers.get("Sec-WebSocket-Extensions", "") or "none"


WsBench = Callable[[WsTarget, str, argparse.Namespace, Run], Coroutine[Any, Any, None]]


def run_ws_bench(bench: WsBench, target: WsTarget, provider: str, args: argparse.Namespace, run: Run) -> None:
    asyncio.run(bench(target, provider, args, run))


def server_providers(providers: Sequence[str]) -> list[str]:
    # piper first: it is the server's default provider.
    return [p for p in ("piper", "tone") if p in providers]


def split_base_url(url: str) -> tuple[str, str]:
    """`ws://h:p/...` or `http://h:p` -> (`http://h:p`, `ws://h:p`)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.netloc:
        raise SystemExit(f"--url must look like ws://127.0.0.1:8000 or http://127.0.0.1:8000, not {url!r}")
    secure = parts.scheme in ("https", "wss")
    return f"{'https' if secure else 'http'}://{parts.netloc}", f"{'wss' if secure else 'ws'}://{parts.netloc}"


def run_our_server(args: argparse.Namespace, run: Run, stamp: str) -> None:
    wanted = [b for b in ("stream", "paragraph") if b in args.benchmarks]
    if not wanted:
        return
    with contextlib.ExitStack() as stack:
        info: dict[str, Any]
        if args.url:
            base_http, base_ws = split_base_url(args.url)
            wait_until_up(f"{base_http}/healthz", None, 10.0)
            info = {"url": args.url, "started_here": False}
        else:
            port = free_port()
            names = server_providers(args.providers)
            argv = [
                sys.executable, "-m", "stream_server", "--host", "127.0.0.1", "--port", str(port),
                # The option repeats on the command line; only the environment variable takes
                # a comma-separated list.
                *(arg for name in names for arg in ("--providers", name)),
                "--provider", names[0],
                *args.server_arg,
            ]  # fmt: skip
            server = stack.enter_context(
                ManagedProcess("stream_server", argv, RESULTS_DIR / f"ttfa-{stamp}.server.log")
            )
            run.own_pids.add(server.pid)
            print(f"starting our server: {shlex.join(argv)}", file=sys.stderr)
            base_http, base_ws = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
            wait_until_up(f"{base_http}/healthz", server, args.startup_timeout)
            info = {"command": shlex.join(argv), "started_here": True, "log": str(server.log_path)}
        run.info["our_server"] = info
        health = httpx.get(f"{base_http}/healthz", timeout=5.0).json()
        info["healthz_before"] = health
        loaded = set(health.get("providers", {}))
        target = WsTarget(base_ws, None if args.no_compression else "deflate")
        for provider in args.providers:
            if provider not in loaded:
                run.skipped[f"ours {provider}"] = f"not loaded by the server (it has {sorted(loaded)})"
                continue
            if "ws_extensions" not in info:
                info["ws_extensions"] = asyncio.run(
                    negotiated_extensions(stream_url(base_ws, provider), target.compression)
                )
            for name, bench in (("stream", bench_stream), ("paragraph", bench_paragraph)):
                if name in wanted:
                    guarded(
                        run, f"{name}.{provider}", functools.partial(run_ws_bench, bench, target, provider, args, run)
                    )
        info["healthz_after"] = httpx.get(f"{base_http}/healthz", timeout=5.0).json()


# -- Piper's HTTP server ---------------------------------------------------------------------


def wav_duration_ms(body: bytes) -> float:
    with wave.open(io.BytesIO(body), "rb") as wav:
        return wav.getnframes() * 1000.0 / wav.getframerate()


@dataclass(frozen=True, slots=True)
class HttpTimes:
    first_byte_ms: float
    """Status line and headers received: the first bytes of the response."""
    first_body_byte_ms: float
    complete_ms: float
    body: bytes


def post_once(base: str, text: str, timeout_s: float) -> HttpTimes:
    # A fresh client, so a fresh connection, per request, as on the WebSocket side.
    with httpx.Client(timeout=timeout_s) as client:
        started = time.perf_counter()
        with client.stream("POST", f"{base}/synthesize", json={"text": text}) as response:
            headers_at = time.perf_counter()
            response.raise_for_status()
            chunks: list[bytes] = []
            first_body_at: float | None = None
            for chunk in response.iter_raw():
                if first_body_at is None:
                    first_body_at = time.perf_counter()
                chunks.append(chunk)
        done_at = time.perf_counter()
    body = b"".join(chunks)
    if first_body_at is None or not body.startswith(b"RIFF"):
        raise BenchmarkError(f"Piper's server did not return a WAV file ({len(body)} bytes)")
    return HttpTimes(
        first_byte_ms=(headers_at - started) * 1000.0,
        first_body_byte_ms=(first_body_at - started) * 1000.0,
        complete_ms=(done_at - started) * 1000.0,
        body=body,
    )


def run_piper_http(args: argparse.Namespace, run: Run, stamp: str) -> None:
    if "piper-http" not in args.benchmarks:
        return
    if importlib.util.find_spec("flask") is None:
        run.skipped["piper-http"] = "Flask is not installed: pip install 'piper-tts[http]'"
        return
    port = free_port()
    # No --data-dir: it is only used to find a voice given by name, to list /voices and to
    # download voices; a path to an existing .onnx file is loaded as it is.
    argv = [
        sys.executable, "-m", "piper.http_server",
        "-m", str(args.model), "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    with ManagedProcess("piper.http_server", argv, RESULTS_DIR / f"ttfa-{stamp}.piper-http.log") as server:
        run.own_pids.add(server.pid)
        print(f"starting Piper's HTTP server: {shlex.join(argv)}", file=sys.stderr)
        base = f"http://127.0.0.1:{port}"
        wait_until_up(f"{base}/info", server, args.startup_timeout)
        run.info["piper_http_server"] = {"command": shlex.join(argv), "log": str(server.log_path)}
        first = Series("piper_http.first_byte", "piper http: paragraph POST -> 1st byte")
        body_first = Series("piper_http.first_body_byte", "piper http: paragraph POST -> 1st body byte")
        last = Series("piper_http.complete", "piper http: paragraph POST -> complete")
        audio_ms: list[float] = []
        for measured in iterations(run, args, [first, body_first, last]):
            times = post_once(base, PARAGRAPH, args.timeout)
            if measured:
                first.samples.append(times.first_byte_ms)
                body_first.samples.append(times.first_body_byte_ms)
                last.samples.append(times.complete_ms)
                audio_ms.append(wav_duration_ms(times.body))
        run.series += [first, body_first, last]
        run.info["piper_http.audio_ms_median"] = round(Stats.of(audio_ms).median, 1)


# -- Piper in-process ------------------------------------------------------------------------


def time_synthesis(voice: PiperVoice, text: str, config: SynthesisConfig) -> tuple[float, float, int]:
    """(ms to the first sentence's audio, ms to all of it, number of sentence chunks)."""
    started = time.perf_counter()
    chunks = iter(voice.synthesize(text, syn_config=config))
    next(chunks)
    first_ms = (time.perf_counter() - started) * 1000.0
    count = 1 + sum(1 for _ in chunks)
    return first_ms, (time.perf_counter() - started) * 1000.0, count


def run_raw(args: argparse.Namespace, run: Run) -> None:
    if "raw" not in args.benchmarks:
        return
    from piper import SynthesisConfig

    from stream_server.providers.piper import load_voice

    threads = os.cpu_count() or 1
    # stream_server's own loader, with the thread count it uses when --piper-intra-op-threads is 0.
    voice = load_voice(args.model, threads).voice
    config = SynthesisConfig(length_scale=voice.config.length_scale)  # as the provider at speed 1
    run.info["raw"] = {"intra_op_threads": threads, "model": str(args.model)}
    sentence = Series("raw.first_sentence", "raw piper: 1st sentence (in-process)")
    para_first = Series("raw.paragraph.first_chunk", "raw piper: paragraph -> 1st sentence")
    para_all = Series("raw.paragraph.complete", "raw piper: paragraph -> all")
    for measured in iterations(run, args, [sentence, para_first, para_all]):
        sentence_ms, _, count = time_synthesis(voice, FIRST_SENTENCE, config)
        if count != 1:
            raise BenchmarkError(f"Piper split the first sentence into {count} chunks")
        first_ms, all_ms, _ = time_synthesis(voice, PARAGRAPH, config)
        if measured:
            sentence.samples.append(sentence_ms)
            para_first.samples.append(first_ms)
            para_all.samples.append(all_ms)
    run.series += [sentence, para_first, para_all]


# -- running and reporting -------------------------------------------------------------------


def guarded(run: Run, name: str, step: Callable[[], object]) -> None:
    """Run one benchmark; a failure is reported and recorded, and the others still run."""
    try:
        step()
    except Exception as exc:  # noqa: BLE001 - the boundary of one benchmark: record, go on
        print(f"\n  {name} FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        run.failed[name] = f"{type(exc).__name__}: {exc}"


def machine_info() -> dict[str, Any]:
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": nproc,
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def loadavg() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else []


def format_ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def derived_figures(run: Run) -> dict[str, float | str]:
    def median(key: str) -> float | None:
        s = run.get(key)
        return Stats.of(s.samples).median if s and s.samples else None

    out: dict[str, float | str] = {}
    stream_piper, raw_sentence = median("stream.piper"), median("raw.first_sentence")
    if stream_piper is not None and raw_sentence is not None:
        out["server overhead: ours piper streamed TTFA - raw 1st sentence"] = stream_piper - raw_sentence
    para_piper = median("paragraph.piper.first_audio")
    if para_piper is not None and raw_sentence is not None:
        out["server overhead: ours piper paragraph 1st audio - raw 1st sentence"] = para_piper - raw_sentence
    http_first = median("piper_http.first_byte")
    if http_first is not None and para_piper is not None:
        out["paragraph: Piper HTTP 1st byte - ours 1st audio"] = http_first - para_piper
        out["paragraph: Piper HTTP 1st byte / ours 1st audio"] = f"{http_first / para_piper:.1f}x"
    http_all, raw_all = median("piper_http.complete"), median("raw.paragraph.complete")
    if http_all is not None and raw_all is not None:
        out["Piper HTTP overhead: complete - raw paragraph all"] = http_all - raw_all
    return out


def render_table(run: Run, meta: dict[str, Any]) -> str:
    machine = meta["machine"]
    head = (
        f"{'benchmark':<48}{'n':>4}{'median':>9}{'p90':>9}{'p99':>9}{'min':>9}{'max':>9}{'srv ttfa':>10}{'other%':>8}"
    )
    lines = [
        f"TTFA benchmark, {meta['started']}",
        f"command: {meta['command']}",
        (
            f"machine: nproc={machine['nproc']}  cpu={machine['cpu_model'] or '?'}  python={machine['python']}  "
            f"load average at start {meta['loadavg_start']}, at end {meta.get('loadavg_end')}"
        ),
        (
            f"{meta['iterations']} iterations after {meta['warmup']} warm-up; tokens every "
            f"{meta['token_interval_ms']} ms; TTFA from token {meta['reference_token']!r} ({meta['completion']}); "
            f"ws extensions: {meta['ws_extensions']}"
        ),
        "times in ms. srv ttfa: median of the server's own done.ttfa_ms. other%: mean CPU use of",
        "other processes during the iterations (100 = all cores busy); high values mean a disturbed row.",
        "",
        head,
        "-" * len(head),
    ]
    for s in run.series:
        st = Stats.of(s.samples)
        srv = format_ms(Stats.of(s.server_ttfa).median) if s.server_ttfa else "-"
        other = f"{sum(s.other_cpu) / len(s.other_cpu):.0f}" if s.other_cpu else "-"
        lines.append(
            f"{s.label:<48}{st.n:>4}{format_ms(st.median):>9}{format_ms(st.p90):>9}{format_ms(st.p99):>9}"
            f"{format_ms(st.min):>9}{format_ms(st.max):>9}{srv:>10}{other:>8}"
        )
    derived = derived_figures(run)
    if derived:
        lines += ["", "derived from the medians:"]
        lines += [f"  {k}: {v:.1f} ms" if isinstance(v, float) else f"  {k}: {v}" for k, v in derived.items()]
    audio = {k.removesuffix(".audio_ms_median"): v for k, v in run.info.items() if k.endswith(".audio_ms_median")}
    if audio:
        lines += ["", "audio made from the paragraph (median ms): " + ", ".join(f"{k} {v}" for k, v in audio.items())]
    if run.noisy_starts:
        lines.append(f"{run.noisy_starts} iteration(s) started before the machine became quiet (--quiet-wait)")
    lines += [f"skipped {name}: {why}" for name, why in run.skipped.items()]
    lines += [f"FAILED {name}: {why}" for name, why in run.failed.items()]
    return "\n".join(lines)


def _csv(allowed: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(value: str) -> list[str]:
        items = [v.strip() for v in value.split(",") if v.strip()]
        bad = [v for v in items if v not in allowed]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"choose from {','.join(allowed)}; got {value!r}")
        return items

    return parse


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.ttfa",
        description="Time to first audio of stream_server (WebSocket) against Piper's own HTTP server.",
    )
    add = parser.add_argument
    add("--iterations", "-n", type=int, default=30, help="measured iterations per benchmark (default 30)")
    add("--warmup", type=int, default=3, help="unmeasured iterations before them (default 3)")
    add("--url", help="use this running stream_server (ws://127.0.0.1:8000 or http://...) instead of starting one")
    add(
        "--providers",
        type=_csv(PROVIDERS),
        default=list(PROVIDERS),
        help="our providers to measure (default tone,piper)",
    )
    add(
        "--benchmarks",
        type=_csv(BENCHMARKS),
        default=list(BENCHMARKS),
        help=f"any of {','.join(BENCHMARKS)} (default all)",
    )
    add(
        "--completion",
        choices=("joined", "split"),
        default="joined",
        help="joined: 'river. ' is one token; split: 'river.' then ' ', TTFA from the ' ' (default joined)",
    )
    add("--token-interval-ms", type=float, default=20.0, help="pause between streamed tokens, like an LLM (default 20)")
    add(
        "--pause-ms",
        type=float,
        default=250.0,
        help="pause before each iteration; the quiet check's window (default 250)",
    )
    add(
        "--quiet-below",
        type=float,
        default=15.0,
        help="before each iteration, wait until other processes use less than this CPU %% (0: don't; default 15)",
    )
    add("--quiet-wait", type=float, default=5.0, help="longest such wait per iteration, s (default 5)")
    add("--timeout", type=float, default=60.0, help="limit for one iteration, s (default 60)")
    add("--startup-timeout", type=float, default=180.0, help="limit for a server to come up, s (default 180)")
    add("--no-compression", action="store_true", help="do not offer permessage-deflate on the WebSocket")
    add(
        "--server-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for the stream_server started here (repeat; e.g. --server-arg=--piper-workers=2)",
    )
    add("--model", type=Path, default=None, help="Piper .onnx model (default: the embedded joe voice)")
    add("--output", type=Path, default=None, help="JSON file (default loadtest/results/ttfa-<time>.json)")
    args = parser.parse_args(argv)
    if args.iterations < 1 or args.warmup < 0:
        parser.error("--iterations must be at least 1 and --warmup at least 0")
    if args.model is None:
        from stream_server.providers.piper import default_model_path

        args.model = default_model_path()
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    now = dt.datetime.now().astimezone()
    stamp = now.strftime("%Y%m%d-%H%M%S")
    output: Path = args.output or RESULTS_DIR / f"ttfa-{stamp}.json"
    plan = llm_tokens(args.completion)
    meta: dict[str, Any] = {
        "started": now.isoformat(timespec="seconds"),
        "command": shlex.join(sys.orig_argv),
        "cwd": os.getcwd(),
        "machine": machine_info(),
        "loadavg_start": loadavg(),
        "iterations": args.iterations,
        "warmup": args.warmup,
        "token_interval_ms": args.token_interval_ms,
        "completion": args.completion,
        "reference_token": plan.tokens[plan.reference],
        "tokens": list(plan.tokens),
        "first_sentence": FIRST_SENTENCE,
        "paragraph": PARAGRAPH,
        "ws_compression_offered": "none" if args.no_compression else "permessage-deflate",
        "quiet_below_pct": args.quiet_below,
        "model": str(args.model),
    }
    run = Run()
    with stop_on_signals():
        try:
            guarded(run, "our server", lambda: run_our_server(args, run, stamp))
            guarded(run, "piper-http", lambda: run_piper_http(args, run, stamp))
            guarded(run, "raw", lambda: run_raw(args, run))
        finally:
            # Written even when interrupted: whatever was measured is kept.
            meta["loadavg_end"] = loadavg()
            meta["ws_extensions"] = run.info.get("our_server", {}).get("ws_extensions", "-")
            meta["noisy_starts"] = run.noisy_starts
            result = {
                "meta": meta,
                "info": run.info,
                "benchmarks": {s.key: s.as_dict() for s in run.series},
                "derived_ms": derived_figures(run),
                "skipped": run.skipped,
                "failed": run.failed,
            }
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    print()
    print(render_table(run, meta))
    print(f"\nJSON: {output}")
    return 1 if run.failed else 0


def cli() -> int:
    try:
        return main()
    except KeyboardInterrupt:
        print("\ninterrupted: servers stopped; what was measured is in the JSON file", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(cli())
