"""Graceful shutdown of a real server process: SIGTERM mid-stream."""

from __future__ import annotations

import asyncio
import signal

import httpx
from websockets.asyncio.client import connect

from .helpers import receive, receive_all, send
from .processes import ServerProcess, server_process

async def wait_draining(server: ServerProcess) -> dict[str, object]:
    """`/readyz` once it reports the drain (the signal is handled by the server's loop)."""
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        for _ in range(500):
            response = await http.get("/readyz")
            if response.status_code == 503:
                return response.json()
            await asyncio.sleep(0.01)  # polling the probe, as a load balancer does
    raise AssertionError("readyz never failed after SIGTERM")


def assert_clean_exit(server: ServerProcess) -> None:
    assert server.process.returncode == 0, "".join(server.lines)
    levels = {entry["level"] for entry in server.log()}
    assert not levels & {"error", "critical"}, "".join(server.lines)
    assert "Traceback" not in "".join(server.lines)


async def test_sigterm_drains_new_streams_refused_running_ones_finish(tmp_path: object) -> None:
    async with server_process("--shutdown-grace-s", "20") as server:
        async with connect(server.ws_url) as running:
            assert (await receive(running))["type"] == "ready"
            await send(running, type="text", text="Started before the signal. ")
            server.process.send_signal(signal.SIGTERM)
            readiness = await wait_draining(server)
            assert readiness["ready"] is False and readiness["draining"] is True
            # New streams are refused, on both transports, with the same code.
            async with connect(server.ws_url) as late:
                refusal = await receive(late)
                await receive_all(late)
            assert refusal["code"] == "shutting_down" and late.close_code == 1001
            async with httpx.AsyncClient(base_url=server.http_url) as http:
                refused = await http.post("/v1/tts/stream", json={"text": "Too late."})
                assert refused.status_code == 503 and refused.json()["error"]["code"] == "shutting_down"
            # The running stream is not cut: it gets more text and finishes normally.
            await send(running, type="text", text="And finished after it.")
            await send(running, type="end")
            transcript = await receive_all(running)
        assert running.close_code == 1000 and not transcript.messages("error")
        assert [s["text"] for s in transcript.messages("segment")] == [
            "Started before the signal.",
            "And finished after it.",
        ]
        assert transcript.messages("done")[0]["segments"] == 2
        await asyncio.wait_for(server.process.wait(), 30)
    assert_clean_exit(server)
    events = [entry["event"] for entry in server.log()]
    assert events.index("server.draining") < events.index("server.drained")


async def test_streams_that_outlast_the_grace_period_end_with_shutting_down_and_1001() -> None:
    async with server_process("--shutdown-grace-s", "0.5") as server:
        async with connect(server.ws_url) as idle, connect(server.ws_url) as reading:
            for ws in (idle, reading):
                assert (await receive(ws))["type"] == "ready"
            await send(reading, type="text", text="Heard in full. Then this waits")
            server.process.send_signal(signal.SIGTERM)
            endings = [await receive_all(ws) for ws in (idle, reading)]
        for ws, transcript in zip((idle, reading), endings):
            assert ws.close_code == 1001
            assert [e["code"] for e in transcript.messages("error")] == ["shutting_down"]
        assert [s["text"] for s in endings[1].messages("segment")] == ["Heard in full."]
        await asyncio.wait_for(server.process.wait(), 30)
    assert_clean_exit(server)
    drained = next(entry for entry in server.log() if entry["event"] == "server.drained")
    assert drained["stopped"] == 2 and drained["streams_left"] == 0


async def test_a_second_signal_stops_at_once() -> None:
    async with server_process("--shutdown-grace-s", "600") as server:
        async with connect(server.ws_url) as ws:
            assert (await receive(ws))["type"] == "ready"
            server.process.send_signal(signal.SIGTERM)
            await wait_draining(server)
            server.process.send_signal(signal.SIGTERM)
            await receive_all(ws)
        await asyncio.wait_for(server.process.wait(), 30)
    # Not stuck for 600 s, and still a clean exit (uvicorn would re-raise a signal it recorded).
    assert server.process.returncode == 0
    assert ws.close_code == 1012  # protocol.md's close codes: the server stopped at once
    # The person at the terminal is told what happens and how to skip the wait, in plain words.
    said = [line.strip() for line in server.lines if line.startswith("stream_server: ")]
    assert len(said) == 2, "".join(server.lines)
    assert "draining" in said[0] and "up to 600 s" in said[0] and "Ctrl-C again to exit now" in said[0]
    assert said[1].startswith("stream_server: exiting now")
    events = [entry["event"] for entry in server.log()]
    assert events.index("server.draining") < events.index("server.exit_now")
