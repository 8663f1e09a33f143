"""Three server processes on one Redis behind a real nginx (deploy/nginx/stream-server.conf),
round-robin: the official `openai` SDK, a WebSocket stream and SSE through the proxy."""

from __future__ import annotations

import httpx
import numpy as np
from openai import AsyncOpenAI
from websockets.asyncio.client import connect

from stream_server.providers import tone

from .cluster import DEPLOY_NGINX_CONF, cluster, proxy_config
from .helpers import pcm_samples, receive_all, rms, send, wait_for
from .test_sse import Event, read_events

TEXT = "Hello there, this is the first sentence. And here is a second one!"
TONE_MS = tone.expected_duration_ms("Hello there, this is the first sentence.") + tone.expected_duration_ms(
    "And here is a second one!"
)
SPEECH = "POST /v1/audio/speech HTTP/1.1"


def test_the_fixture_runs_deploys_nginx_config_changing_only_upstreams_and_port() -> None:
    template = DEPLOY_NGINX_CONF.read_text()
    config = proxy_config(template, ["127.0.0.1:1", "127.0.0.1:2"], "127.0.0.1:3")
    changed = [line for line in config.splitlines() if line not in template.splitlines()]
    assert [line.strip() for line in changed] == ["server 127.0.0.1:1;", "server 127.0.0.1:2;", "listen 127.0.0.1:3;"]
    assert "server stream-server:8000;" not in config
    # What streaming through the proxy depends on stays in the file the docs show.
    for directive in ("proxy_buffering off;", "proxy_request_buffering off;", "proxy_http_version 1.1;"):
        assert directive in template


async def test_openai_sdk_through_nginx_spreads_over_three_servers() -> None:
    async with cluster(3) as nodes:
        client = AsyncOpenAI(base_url=f"{nodes.proxy.http_url}/v1", api_key="unused", max_retries=0)
        for _ in range(6):
            async with client.audio.speech.with_streaming_response.create(
                model="tts-1", voice="alloy", input=TEXT, response_format="pcm"
            ) as response:
                assert response.status_code == 200
                data = b"".join([chunk async for chunk in response.iter_bytes()])
            samples = np.frombuffer(data, "<i2") / 32768
            assert TONE_MS <= len(samples) / 24 <= TONE_MS + 600  # 24 kHz: the whole text, with its pauses
            assert rms(samples) > 0.05

        # Round-robin, no stickiness: each of the three answered two of the six.
        def answered() -> list[int]:
            return [sum(SPEECH in line for line in server.lines) for server in nodes.servers]

        await wait_for(lambda: sum(answered()) == 6, timeout=10)
        assert answered() == [2, 2, 2]
        await client.close()

        # A WebSocket upgrades through the proxy and streams to the end.
        async with connect(f"{nodes.proxy.ws_url}?provider=tone&format=pcm") as ws:
            await send(ws, type="text", text="One two three. Four five.")
            await send(ws, type="end")
            transcript = await receive_all(ws)
        assert len(transcript.messages("done")) == 1
        assert rms(pcm_samples(transcript.frames())) > 0.05

        # Server-Sent Events pass through unbuffered, to the last event.
        async with httpx.AsyncClient(timeout=10) as http:
            async with http.stream(
                "POST", f"{nodes.proxy.http_url}/v1/tts/stream", json={"text": "One two. Three four.", "format": "pcm"}
            ) as answer:
                assert answer.status_code == 200
                assert answer.headers["content-type"].startswith("text/event-stream")
                kinds = [line.removeprefix("event: ") async for line in answer.aiter_lines() if line.startswith("event: ")]
        assert "audio" in kinds and kinds[-1] == "done", kinds
        assert "[error]" not in nodes.proxy.error_log()


async def test_an_sse_session_through_nginx_any_request_on_any_server() -> None:
    """The SSE session flow through the round-robin proxy: its create, text, events and resume
    land on different servers (no stickiness), and the client hears every sentence once."""
    sentences = [f"Sentence number {n} goes through the proxy." for n in range(4)]
    async with cluster(3) as nodes:
        async with httpx.AsyncClient(base_url=nodes.proxy.http_url, timeout=20) as http:
            created = await http.post("/v1/tts/sessions", json={"format": "pcm", "sample_rate": 24000})
            assert created.status_code == 201, created.text
            base = f"/v1/tts/sessions/{created.json()['id']}"
            for seq, sentence in enumerate(sentences):
                posted = await http.post(f"{base}/text", json={"text": sentence + " ", "seq": seq})
                assert posted.status_code == 200, posted.text
            assert (await http.post(f"{base}/text", json={"end": True, "seq": len(sentences)})).status_code == 200

            events: list[Event] = []
            async with http.stream("GET", f"{base}/events") as answer:
                assert answer.status_code == 200
                async for event in read_events(answer.aiter_lines()):
                    events.append(event)
                    if event.kind == "segment_end" and len(events) > 3:
                        break  # cut mid-session, to resume through the proxy (another server)
            cut = events[-1].id
            async with http.stream("GET", f"{base}/events", headers={"Last-Event-ID": str(cut)}) as answer:
                assert answer.status_code == 200
                events += [event async for event in read_events(answer.aiter_lines())]

    kinds = [event.kind for event in events]
    assert kinds[0] == "ready" and kinds[-1] == "done", kinds
    ids = [event.id for event in events]
    assert ids == sorted(set(ids)), "the resume repeated or skipped an event"
    assert kinds.count("segment") == kinds.count("segment_end") == len(sentences)
    spoken = b"".join(event.audio for event in events if event.kind == "audio")
    expected = sum(tone.expected_duration_ms(s) for s in sentences)
    assert expected <= len(spoken) / 48 <= expected + 2000  # 24 kHz pcm16: the whole text, with its pauses
    # 1 create + 5 text + 2 events requests, round-robin over three servers: each took some.
    session_requests = [sum("/v1/tts/sessions" in line for line in server.lines) for server in nodes.servers]
    assert sum(session_requests) == 8 and all(session_requests), session_requests
