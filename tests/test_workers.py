"""`--workers 2`: two real server processes on one port under the supervisor, on a real Redis.

Both serve, `/metrics` sums them, a worker killed with SIGKILL is restarted and serves, and
SIGTERM drains every worker (a running stream finishes) before the server exits 0.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from .helpers import receive, receive_all, send, wait_for
from .processes import ServerProcess, server_process
from .redis_server import redis_server

ATTEMPTS = 40  # streams tried before concluding a worker never gets a client


def frames_sent(text: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "tts_frames_sent_total":
                return sample.value
    raise AssertionError("no tts_frames_sent_total in /metrics")


def serving_pids(server: ServerProcess) -> dict[int, int]:
    """Worker slot → the pid that last reported serving, from the supervisor's log."""
    pids: dict[int, int] = {}
    for entry in server.log():
        if entry.get("event") == "worker.serving":
            pids[int(entry["worker"])] = int(entry["pid"])  # type: ignore[call-overload]
    return pids


def websocket_pids(server: ServerProcess) -> list[int]:
    """The worker that accepted each WebSocket, in order (every log line says which process wrote it)."""
    return [
        int(entry["pid"])  # type: ignore[call-overload]
        for entry in server.log()
        if "WebSocket /v1/tts/stream" in str(entry.get("event")) and "[accepted]" in str(entry.get("event"))
    ]


async def short_stream(server: ServerProcess) -> int:
    """One stream on a fresh connection; the binary frames it got."""
    async with connect(f"{server.ws_url}?format=pcm") as ws:
        await send(ws, type="text", text="One two.")
        await send(ws, type="end")
        transcript = await receive_all(ws)
    assert len(transcript.messages("done")) == 1
    return len(transcript.frames())


async def streams_until_served_by(server: ServerProcess, pids: set[int]) -> int:
    """Run streams (new connections) until each of `pids` accepted one; the frames they all got."""
    frames = 0
    for _ in range(ATTEMPTS):
        frames += await short_stream(server)
        seen = len(websocket_pids(server))
        await wait_for(lambda: len(websocket_pids(server)) >= seen)
        if pids <= set(websocket_pids(server)):
            return frames
    raise AssertionError(f"after {ATTEMPTS} streams, not every worker of {pids} served: {websocket_pids(server)}")


async def metrics(server: ServerProcess) -> str:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{server.http_url}/metrics", headers={"Connection": "close"})
        response.raise_for_status()
        return response.text


@pytest.mark.skipif(sys.platform != "linux", reason="the supervisor passes descriptors the POSIX way")
async def test_two_workers_serve_sum_their_metrics_survive_a_kill_and_drain_on_sigterm() -> None:
    with redis_server() as redis:
        async with server_process("--workers", "2", "--redis-url", redis.url, "--shutdown-grace-s", "20") as server:
            await wait_for(lambda: len(serving_pids(server)) == 2)
            first = serving_pids(server)
            assert len(set(first.values())) == 2

            # Both serve: streams on new connections land on each of them.
            frames = await streams_until_served_by(server, set(first.values()))
            # /metrics, from whichever worker answers, counts every worker's frames.
            assert frames_sent(await metrics(server)) == frames

            # A worker killed outright is replaced; what it counted still counts.
            os.kill(first[0], signal.SIGKILL)
            await wait_for(lambda: serving_pids(server).get(0) not in (None, first[0]), timeout=20)
            replacement = serving_pids(server)[0]
            assert frames_sent(await metrics(server)) == frames
            frames += await streams_until_served_by(server, {replacement})
            assert frames_sent(await metrics(server)) == frames

            # SIGTERM: every worker drains. A stream still open finishes; new ones are refused.
            async with connect(f"{server.ws_url}?format=pcm") as ws:
                assert (await receive(ws))["type"] == "ready"  # type: ignore[index]
                await send(ws, type="text", text="Still talking here.")
                server.process.send_signal(signal.SIGTERM)
                await wait_for(lambda: sum('"server.draining"' in line for line in server.lines) == 2)
                async with httpx.AsyncClient() as client:
                    for _ in range(4):  # new connections: whichever worker takes one is draining
                        ready = await client.get(f"{server.http_url}/readyz", headers={"Connection": "close"})
                        assert ready.status_code == 503 and ready.json()["draining"] is True
                await send(ws, type="end")
                transcript = await receive_all(ws)
            assert len(transcript.messages("done")) == 1 and transcript.frames()
            assert await asyncio.wait_for(server.process.wait(), 20) == 0
            assert any('"workers.stopped"' in line and '"unclean":[]' in line for line in server.lines)


async def test_a_worker_that_cannot_start_stops_the_server_with_the_reason(tmp_path: object) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "stream_server", "--workers", "2", "--redis-url", "redis://127.0.0.1:1/0",
        "--port", "0", "--providers", "piper", "--provider", "piper", "--piper-voices", "/nonexistent/voice.onnx",
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1
    assert "stream_server: stopped: worker" in stderr.decode()
    assert "refused its settings" in stderr.decode()
