"""Operational endpoints: models, voices, readiness, Prometheus metrics, JSON errors, CORS."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from starlette.routing import Mount
from websockets.asyncio.client import connect

from .conftest import RunningServer, run_server, tone_settings
from .helpers import receive, receive_all, send
from .processes import server_process


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


async def test_metrics_parse_and_move_when_streams_run(tone_server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=tone_server.http_url) as http:
        before = samples((await http.get("/metrics")).text)
        async with connect(tone_server.ws_url) as ws:
            await receive(ws)
            await send(ws, type="text", text="One two three. Four five six seven.")
            during = samples((await http.get("/metrics")).text)
            await send(ws, type="cancel")
            await send(ws, type="text", text="Eight nine.")
            await send(ws, type="end")
            await receive_all(ws)
        await http.post("/v1/audio/speech", json={"model": "tts-1", "voice": "x", "input": "Hi there.", "response_format": "pcm"})
        after = samples((await http.get("/metrics")).text)
    assert during[("tts_active_streams", (("transport", "websocket"),))] == 1
    assert after[("tts_active_streams", (("transport", "websocket"),))] == 0
    assert after[("tts_active_streams", (("transport", "speech"),))] == 0
    assert after[("tts_frames_sent_total", ())] > before.get(("tts_frames_sent_total", ()), 0)
    assert after[("tts_audio_bytes_sent_total", ())] > 0
    assert after[("tts_cancels_total", ())] == 1
    assert after[("tts_time_to_first_audio_seconds_count", ())] == 2
    assert after[("tts_segment_synthesis_seconds_count", (("provider", "tone"),))] >= 2


async def test_models_voices_and_readiness(tone_server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=tone_server.http_url) as http:
        models = (await http.get("/v1/models")).json()["data"]
        voices = (await http.get("/v1/voices")).json()["providers"]["tone"]
        ready = await http.get("/readyz")
        alive = await http.get("/healthz")
    assert [m["id"] for m in models] == ["tone"] and "opus" in models[0]["formats"]
    assert voices[0]["id"] == "beep" and voices[0]["sample_rate"] == 24000
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert alive.json()["status"] == "ok"


async def test_unknown_paths_and_methods_answer_json(tone_server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=tone_server.http_url) as http:
        missing = await http.get("/v1/nothing")
        wrong = await http.get("/v1/audio/speech")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"


async def test_cors_for_configured_origins(tone_provider) -> None:
    settings = tone_settings(allowed_origins=("https://app.example",))
    async with run_server(settings, {"tone": tone_provider}) as server:
        async with httpx.AsyncClient(base_url=server.http_url) as http:
            allowed = await http.options(
                "/v1/tts/sessions",
                headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
            )
            other = await http.get("/v1/voices", headers={"Origin": "https://evil.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "access-control-allow-origin" not in other.headers


async def test_the_api_index_lists_every_route_with_its_docs(tone_server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=tone_server.http_url) as http:
        index = await http.get("/v1/")
        bare = await http.get("/v1")
    assert index.status_code == 200 and bare.json() == index.json()
    listed = {(e["method"], e["path"]) for e in index.json()["endpoints"]}
    routes = set()
    for route in tone_server.server.config.app.routes:
        path = route.path.replace("{session_id}", "{id}")
        # Everything but the index itself and the demo page with its files.
        if path not in ("/v1", "/v1/", "/") and not isinstance(route, Mount):
            methods = getattr(route, "methods", None) or {"GET"}  # a WebSocket route: its GET upgrade
            routes |= {(m, path) for m in methods if m != "HEAD"}
    assert listed == routes
    api_md = (Path(__file__).parent.parent / "docs" / "api.md").read_text()
    for entry in index.json()["endpoints"]:
        doc, _, anchor = entry["docs"].partition("#")
        assert (Path(__file__).parent.parent / doc).exists()
        if anchor:
            assert f"(#{anchor})" in api_md, anchor  # the Contents links each section's anchor


async def test_every_answer_carries_a_request_id(tone_server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=tone_server.http_url) as http:
        answers = [
            await http.get("/healthz"),
            await http.get("/v1/nothing"),
            await http.post("/v1/tts/stream", json={"text": "Hi there."}),
            await http.post("/v1/audio/speech", json={"model": "tts-1", "voice": "alloy", "input": "Hi."}),
        ]
        ids = [answer.headers["x-request-id"] for answer in answers]
        echoed = await http.get("/healthz", headers={"x-request-id": "trace-42.a:b"})
        insane = await http.get("/healthz", headers={"x-request-id": "has spaces\tand tabs"})
    assert all(re.fullmatch(r"req_[0-9a-f]{32}", i) for i in ids) and len(set(ids)) == len(ids)
    assert echoed.headers["x-request-id"] == "trace-42.a:b"
    assert re.fullmatch(r"req_[0-9a-f]{32}", insane.headers["x-request-id"])
    async with connect(tone_server.ws_url, additional_headers={"x-request-id": "ws-7"}) as ws:
        assert ws.response is not None and ws.response.headers["x-request-id"] == "ws-7"


async def test_the_request_id_is_logged_with_the_stream_id() -> None:
    async with server_process() as server, httpx.AsyncClient(base_url=server.http_url) as http:
        speech = {"model": "tts-1", "voice": "alloy", "input": "Hi there.", "response_format": "pcm"}
        spoken = await http.post("/v1/audio/speech", json=speech, headers={"x-request-id": "trace-speech"})
        streamed = await http.post("/v1/tts/stream", json={"text": "Hi there."})
        session = await http.post("/v1/tts/sessions", json={}, headers={"x-request-id": "trace-session"})
        async with connect(server.ws_url, additional_headers={"x-request-id": "trace-ws"}) as ws:
            await ws.recv()  # ready: the stream is open
    assert spoken.status_code == streamed.status_code == 200 and session.status_code == 201
    opened = {entry["event"]: entry for entry in server.log() if str(entry["event"]).endswith(".open")}
    assert opened["speech.open"]["request"] == "trace-speech" and opened["speech.open"]["stream"]
    assert opened["sse_stream.open"]["request"] == streamed.headers["x-request-id"]
    assert opened["sse.open"]["request"] == "trace-session" and opened["stream.open"]["request"] == "trace-ws"
