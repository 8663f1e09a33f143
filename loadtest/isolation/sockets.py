"""Slow and silent sockets, and secrets in the log (isolation issue, findings 6 and 7).

`python -m loadtest.isolation.sockets [--server-source DIR]` starts `python -m stream_server`
processes (tone provider, loopback) and measures:

- alice holds 150 sockets that trickle a request head (a byte every 2 s), under a 1,024-descriptor
  limit: bob's request latency meanwhile, and how many of alice's sockets the server still holds
  after 15 s (the request-head deadline's work);
- alice opens 300 such sockets against a server limited to 256 descriptors: the server's CPU and
  the bytes it logs over 5 s, whether bob is answered meanwhile, and once alice has gone;
- a WebSocket client and an HTTP client that never read (a 4 KiB receive buffer): how long the
  server keeps each connection (bounded at 60 s);
- each spelling of a credential in a query string (`?%74oken=`, `?TOKEN=`, `;token=`,
  `?api_key=`), requested of a keyed server at INFO: whether the secret is in its log.

Every client is bounded in count and time; nothing leaves loopback.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import socket
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from loadtest.load.procstat import read_sample
from loadtest.load.server import StartedServer, server_argv
from loadtest.ttfa import ManagedProcess, free_port, wait_until_up

from . import Figure, environment, markdown, parser

LONG_TEXT = " ".join(f"Sentence number {n} has a few more words in it." for n in range(300))
TINY_BUFFER = 4096
KEEP_BOUND_S = 60.0
_TCP_ESTABLISHED = 1


@contextmanager
def limited_server(
    source: Path | None, log_path: Path, max_files: int, extra: Sequence[str] = ()
) -> Iterator[StartedServer]:
    """A server process whose descriptor limit is `max_files` (soft and hard)."""
    port = free_port()
    argv = server_argv(port, ["tone"], 200, extra)
    env = environment(None, source)
    prefix = ["prlimit", f"--nofile={max_files}:{max_files}", "env", *(f"{k}={v}" for k, v in env.items())]
    with ManagedProcess("stream_server", [*prefix, *argv], log_path) as process:
        base = f"http://127.0.0.1:{port}"
        wait_until_up(f"{base}/readyz", process, 120)
        yield StartedServer(base, process.pid, " ".join(argv), log_path)


def _port(server: StartedServer) -> int:
    return int(server.base_http.rsplit(":", 1)[1])


def _open(port: int, receive_buffer: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    return sock


def _held_by_server(sock: socket.socket) -> bool:
    """The server has not closed this connection (no FIN, no reset): read without reading data."""
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] == _TCP_ESTABLISHED


def _bob(base_http: str, path: str = "/v1/voices") -> tuple[str, float]:
    """One request of bob's: its outcome and how long it took."""
    started = time.monotonic()
    try:
        status = str(httpx.get(f"{base_http}{path}", timeout=3.0).status_code)
    except httpx.TimeoutException:
        status = "no answer in 3 s"
    except httpx.TransportError as exc:
        status = f"refused ({type(exc).__name__})"
    return status, time.monotonic() - started


def slow_heads_under_the_limit(source: Path | None, logs: Path) -> list[Figure]:
    scenario = "alice: 150 sockets trickling a request head, fd limit 1024"
    with limited_server(source, logs / "slow-heads.log", 1024) as server:
        alice = []
        for _ in range(150):
            sock = _open(_port(server))
            sock.sendall(b"GET /v1/voices HTTP/1.1\r\n")
            alice.append(sock)
        answers = []
        started = time.monotonic()
        while time.monotonic() - started < 15:
            answers.append(_bob(server.base_http))
            for sock in alice:  # a header byte each, every ~2 s
                with contextlib.suppress(OSError):
                    sock.send(b"X")
            time.sleep(2)
        held = sum(_held_by_server(sock) for sock in alice)
        for sock in alice:
            sock.close()
    served = sum(status == "200" for status, _ in answers)
    return [
        Figure(scenario, "bob served (GET /v1/voices)", f"{served}/{len(answers)}", "all"),
        Figure(scenario, "bob's latency, ms (p50)", f"{1000 * statistics.median(t for _, t in answers):.1f}"),
        Figure(scenario, "alice's sockets the server still holds after 15 s", f"{held}/150", "0"),
    ]


def out_of_descriptors(source: Path | None, logs: Path) -> list[Figure]:
    scenario = "alice: 300 sockets trickling a request head, fd limit 256"
    log_path = logs / "out-of-descriptors.log"
    with limited_server(source, log_path, 256) as server:
        log_before = log_path.stat().st_size
        alice = []
        for _ in range(300):
            sock = _open(_port(server))  # the kernel completes the handshake even when the server cannot accept
            sock.sendall(b"GET /v1/voices HTTP/1.1\r\n")
            alice.append(sock)
        time.sleep(0.5)
        first = read_sample(server.pid)
        time.sleep(5)
        last = read_sample(server.pid)
        log_bytes = log_path.stat().st_size - log_before
        bob_during, took = _bob(server.base_http, "/healthz")
        for sock in alice:
            sock.close()
        time.sleep(2)
        bob_after, _ = _bob(server.base_http, "/healthz")
    cpu = "n/a" if first is None or last is None else f"{100 * (last.cpu_s - first.cpu_s) / (last.at - first.at):.0f}"
    return [
        Figure(scenario, "server CPU over 5 s, % of a core", cpu, "~0 (no spin)"),
        Figure(scenario, "server log from alice's first socket to 5 s on, bytes", f"{log_bytes}", "a line or two"),
        Figure(scenario, "bob during (GET /healthz)", f"{bob_during} after {took:.1f} s", "refused at once"),
        Figure(scenario, "bob once alice has gone", bob_after, "200"),
    ]


def _websocket_frame(text: str) -> bytes:
    """A masked text frame, as a client sends it (RFC 6455 §5.2)."""
    payload = text.encode()
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", 0x81, 0x80 | length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", 0x81, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", 0x81, 0x80 | 127, length)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _never_reading_websocket(port: int) -> socket.socket:
    sock = _open(port, TINY_BUFFER)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /v1/tts/stream?format=f32&sample_rate=48000 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:  # the handshake's answer only; nothing after it is read
        head += sock.recv(1)
    sock.sendall(_websocket_frame('{"type":"text","text":"%s"}' % LONG_TEXT) + _websocket_frame('{"type":"end"}'))
    return sock


def _never_reading_http(port: int) -> socket.socket:
    sock = _open(port, TINY_BUFFER)
    body = b'{"text": "%s", "format": "f32", "sample_rate": 48000}' % LONG_TEXT.encode()
    sock.sendall(
        b"POST /v1/tts/stream HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(body), body)
    )
    return sock


def never_reading_clients(source: Path | None, logs: Path) -> list[Figure]:
    figures = []
    with limited_server(source, logs / "never-reading.log", 1024, ("--max-lead-ms", "0")) as server:
        for name, make in (("WebSocket", _never_reading_websocket), ("HTTP (SSE)", _never_reading_http)):
            sock = make(_port(server))
            started = time.monotonic()
            while _held_by_server(sock) and time.monotonic() - started < KEEP_BOUND_S:
                time.sleep(0.1)
            kept = time.monotonic() - started
            value = f"> {KEEP_BOUND_S:.0f} (still open)" if _held_by_server(sock) else f"{kept:.1f}"
            sock.close()
            scenario = f"a {name} client that never reads (4 KiB receive buffer)"
            wanted = "~5 (--write-timeout-s) + filling the buffers"
            figures.append(Figure(scenario, "s the server keeps its connection", value, wanted))
    return figures


SPELLINGS = (
    ("?%74oken=<token>", "%74oken={token}"),
    ("?TOKEN=<token>", "TOKEN={token}"),
    ("?voice=low;token=<token>", "voice=low;token={token}"),
    ("?api_key=<key>", "api_key={key}"),
)


def secrets_in_the_log(source: Path | None, logs: Path) -> list[Figure]:
    alice_key, bob_key = (base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=") for _ in range(2))
    log_path = logs / "secrets.log"
    with tempfile.TemporaryDirectory() as folder:
        keys = Path(folder) / "keys.txt"
        pairs = (("alice", alice_key), ("bob", bob_key))
        keys.write_text("".join(f"{name} sha256:{hashlib.sha256(key.encode()).hexdigest()}\n" for name, key in pairs))
        extra = ("--api-keys-file", str(keys), "--log-level", "info")
        with limited_server(source, log_path, 1024, extra) as server:
            bearer = {"Authorization": f"Bearer {alice_key}"}
            secrets: list[tuple[str, str]] = []
            with httpx.Client(base_url=server.base_http, timeout=10) as http:
                for label, spelling in SPELLINGS:
                    token = http.post("/v1/tokens", headers=bearer).json()["token"]
                    query = spelling.format(token=token, key=alice_key)
                    http.get(f"/v1/voices?{query}")
                    with contextlib.suppress(OSError):  # a WebSocket handshake with it too (refused)
                        sock = _open(_port(server))
                        sock.sendall(
                            f"GET /v1/tts/stream?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
                        )
                        sock.recv(4096)
                        sock.close()
                    secrets.append((label, alice_key if "{key}" in spelling else token))
            time.sleep(0.5)  # the last lines reach the file
            log = log_path.read_text(errors="replace")
    measure = "secret in the log (INFO)"
    return [
        Figure(f"{label} in an HTTP and a WebSocket request", measure, "yes" if secret in log else "no", "no")
        for label, secret in secrets
    ]


def measure(source: Path | None) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="isolation-sockets-") as folder:
        logs = Path(folder)
        return [
            *slow_heads_under_the_limit(source, logs),
            *out_of_descriptors(source, logs),
            *never_reading_clients(source, logs),
            *secrets_in_the_log(source, logs),
        ]


def main(argv: Sequence[str] | None = None) -> int:
    options = parser(__doc__.splitlines()[0] if __doc__ else None).parse_args(argv)
    print(markdown(measure(options.server_source)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
