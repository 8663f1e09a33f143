"""SSE: one-shot streams and incremental sessions with Last-Event-ID resume, over real HTTP."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from stream_server.providers.tone import ToneProvider
from stream_server.text import split_sentences

from .conftest import RunningServer, run_server, tone_settings
from .helpers import wait_for
from .test_ws_stream import expected_segment_ms

TEXT = "Hello there. This is a test of the stream! Goodbye now."


@dataclass
class Event:
    id: int | None
    kind: str
    data: dict

    @property
    def audio(self) -> bytes:
        return base64.b64decode(self.data["audio"])


async def read_events(lines: AsyncIterator[str]) -> AsyncIterator[Event]:
    """A minimal SSE parser (as the spec says: fields until a blank line; comments ignored)."""
    event_id, kind, data = None, "message", []
    async for line in lines:
        if line == "":
            if data:
                yield Event(event_id, kind, json.loads("\n".join(data)))
            event_id, kind, data = None, "message", []
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "id":
                event_id = int(value)
            elif name == "event":
                kind = value
            elif name == "data":
                data.append(value)


async def read_with_drops(http: httpx.AsyncClient, session: str, every: int, most: int = 200) -> list[Event]:
    """A session's events to `done`, the client going away without a word after every `every`
    events and resuming with `Last-Event-ID` (at most `most` connections)."""
    received: list[Event] = []
    for _ in range(most):
        headers = {"Last-Event-ID": str(received[-1].id)} if received else {}
        async with http.stream("GET", f"/v1/tts/sessions/{session}/events", headers=headers) as response:
            count = 0
            async for event in read_events(response.aiter_lines()):
                received.append(event)
                count += 1
                if count == every and event.kind != "done":
                    break
        if received and received[-1].kind == "done":
            break
    return received


def pcm_ms(events: list[Event]) -> float:
    return sum(len(e.audio) for e in events if e.kind == "audio") / 48


def expected_ms(text: str) -> float:
    return sum(expected_segment_ms(s) for s in split_sentences(text))


async def test_one_shot_stream_with_json_body(tone_server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=tone_server.http_url) as http:
        async with http.stream("POST", "/v1/tts/stream", json={"text": TEXT, "sample_rate": 24000}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = [e async for e in read_events(response.aiter_lines())]
    kinds = [e.kind for e in events]
    assert kinds[0] == "ready" and kinds[-1] == "done"
    assert [e.id for e in events] == list(range(1, len(events) + 1))
    assert [e.data["text"] for e in events if e.kind == "segment"] == split_sentences(TEXT)
    # Every audio event names its segment, and comes between that segment's start and end.
    current = None
    for event in events:
        if event.kind == "segment":
            current = event.data["seq"]
        elif event.kind == "audio":
            assert event.data["seq"] == current
    assert pcm_ms(events) == pytest.approx(expected_ms(TEXT), abs=0.1)


async def test_one_shot_stream_with_a_chunked_text_body(tone_server: RunningServer) -> None:
    """The body arrives over time and the audio of its first sentence comes back meanwhile.

    httpx sends a whole body before it reads the answer, so this client speaks HTTP/1.1 itself:
    chunked transfer up, the event stream down, on one connection at once.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", tone_server.port)

    def chunk(data: bytes) -> bytes:
        return b"%x\r\n%s\r\n" % (len(data), data)

    writer.write(
        b"POST /v1/tts/stream?sample_rate=24000 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + chunk(b"First sentence here. Sec")
    )
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"text/event-stream" in head

    async def lines() -> AsyncIterator[str]:
        while True:
            size = int((await reader.readline()).strip(), 16)  # the answer is chunked too
            if size == 0:
                return
            data = await reader.readexactly(size + 2)
            for line in data[:-2].decode().split("\n"):
                yield line

    events: list[Event] = []
    async for event in read_events(lines()):
        events.append(event)
        if event.kind == "audio" and len([e for e in events if e.kind == "audio"]) == 1:
            # Audio of the first sentence is here before the rest of the text was even sent.
            tail = "ond one, with é: done.".encode()
            writer.write(chunk(tail[:18]) + chunk(tail[18:]) + b"0\r\n\r\n")  # é split across chunks
            await writer.drain()
    writer.close()
    texts = [e.data["text"] for e in events if e.kind == "segment"]
    assert texts == ["First sentence here.", "Second one, with é: done."]


@pytest.mark.parametrize(
    ("body", "code"),
    [({"sample_rate": 24000}, "bad_message"), ({"text": 5}, "bad_message"), ({"text": "x", "voice": "no"}, "unknown_voice")],
)
async def test_one_shot_errors_are_json(tone_server: RunningServer, body: dict, code: str) -> None:
    async with httpx.AsyncClient(base_url=tone_server.http_url) as http:
        response = await http.post("/v1/tts/stream", json=body)
    assert response.status_code == 400 and response.json()["error"]["code"] == code


async def create(http: httpx.AsyncClient, **config) -> str:
    response = await http.post("/v1/tts/sessions", json=config)
    assert response.status_code == 201
    created = response.json()
    assert created["events_url"] == f"/v1/tts/sessions/{created['id']}/events"
    return created["id"]


async def test_a_session_streams_text_as_it_arrives(tone_server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=tone_server.http_url) as http:
        session = await create(http, sample_rate=24000)
        async with http.stream("GET", f"/v1/tts/sessions/{session}/events") as response:
            events = read_events(response.aiter_lines())
            assert (await anext(events)).kind == "ready"
            for i, piece in enumerate(["Hello the", "re. How are", " you?"]):
                reply = await http.post(f"/v1/tts/sessions/{session}/text", json={"text": piece, "seq": i})
                assert reply.status_code == 200
            first = await anext(events)
            assert (first.kind, first.data["text"]) == ("segment", "Hello there.")
            await http.post(f"/v1/tts/sessions/{session}/text", json={"end": True})
            rest = [e async for e in events]
    assert rest[-1].kind == "done"
    assert [e.data["text"] for e in [first, *rest] if e.kind == "segment"] == ["Hello there.", "How are you?"]


async def test_text_requests_are_applied_in_their_order_once(tone_server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=tone_server.http_url) as http:
        session = await create(http)
        url = f"/v1/tts/sessions/{session}/text"
        early = await http.post(url, json={"text": "world. ", "seq": 1})
        assert early.status_code == 409 and early.json()["error"]["code"] == "out_of_order"
        assert (await http.post(url, json={"text": "Hello ", "seq": 0})).status_code == 200
        assert (await http.post(url, json={"text": "Hello ", "seq": 0})).status_code == 200  # a retry: ignored
        assert (await http.post(url, json={"text": "world.", "seq": 1, "end": True})).status_code == 200
        async with http.stream("GET", f"/v1/tts/sessions/{session}/events") as response:
            events = [e async for e in read_events(response.aiter_lines())]
    assert [e.data["text"] for e in events if e.kind == "segment"] == ["Hello world."]


async def test_a_reader_that_reconnects_with_last_event_id_misses_and_repeats_nothing(
    tone_server: RunningServer,
) -> None:
    text = " ".join(f"Sentence number {i} is right here." for i in range(12))
    async with httpx.AsyncClient(base_url=tone_server.http_url) as http:
        session = await create(http, sample_rate=24000)
        await http.post(f"/v1/tts/sessions/{session}/text", json={"text": text, "end": True})
        received = await read_with_drops(http, session, every=60)
    assert received[-1].kind == "done"
    assert [e.id for e in received] == list(range(1, len(received) + 1))  # no gap, no repeat
    assert pcm_ms(received) == pytest.approx(expected_ms(text), abs=0.1)


async def test_resume_from_an_event_no_longer_kept_says_so(tone_provider) -> None:
    async with run_server(tone_settings(sse_resume_ms=100), {"tone": tone_provider}) as server:
        async with httpx.AsyncClient(base_url=server.http_url) as http:
            session = await create(http)
            await http.post(f"/v1/tts/sessions/{session}/text", json={"text": TEXT, "end": True})
            async with http.stream("GET", f"/v1/tts/sessions/{session}/events") as response:
                [e async for e in read_events(response.aiter_lines())]
            async with http.stream(
                "GET", f"/v1/tts/sessions/{session}/events", headers={"Last-Event-ID": "1"}
            ) as response:
                events = [e async for e in read_events(response.aiter_lines())]
    assert events[0].kind == "error" and events[0].data["code"] == "resume_unavailable"


async def test_delete_is_a_barge_in(tone_server: RunningServer) -> None:
    text = " ".join(f"Sentence number {i} is right here." for i in range(200))
    async with httpx.AsyncClient(base_url=tone_server.http_url) as http:
        session = await create(http)
        await http.post(f"/v1/tts/sessions/{session}/text", json={"text": text})
        async with http.stream("GET", f"/v1/tts/sessions/{session}/events") as response:
            events = read_events(response.aiter_lines())
            while (await anext(events)).kind != "audio":
                pass
            assert (await http.delete(f"/v1/tts/sessions/{session}")).status_code == 200
            kinds = []
            async for event in events:
                kinds.append(event.kind)
                if event.kind == "cancelled":
                    break
            await http.post(f"/v1/tts/sessions/{session}/text", json={"text": "Fresh start.", "end": True})
            after = [e async for e in events]
    assert kinds.count("segment") < 100  # most of the 200 sentences were dropped, not sent
    assert [e.data["text"] for e in after if e.kind == "segment"] == ["Fresh start."]
    assert after[-1].kind == "done"


async def test_unknown_and_expired_sessions_get_404(tone_server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=tone_server.http_url) as http:
        missing = await http.post("/v1/tts/sessions/nope/text", json={"text": "hi"})
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_session"
        session = await create(http)
        sessions = tone_server.server.config.loaded_app.app.state.sse_sessions
        assert sessions.expire() == 0  # just used: not idle
        idle_s = tone_server.state.settings.sse_idle_s
        sessions._clock = lambda: time.monotonic() + idle_s + 1  # the sweep, run later than that
        assert sessions.expire() == 1
        gone = await http.post(f"/v1/tts/sessions/{session}/text", json={"text": "hi"})
    assert gone.status_code == 404
    assert len(tone_server.state.streams) == 0


async def test_a_refused_numbered_request_can_be_retried(tone_provider) -> None:
    async with run_server(tone_settings(max_pending_chars=100), {"tone": tone_provider}) as server:
        async with httpx.AsyncClient(base_url=server.http_url) as http:
            session = await create(http)
            url = f"/v1/tts/sessions/{session}/text"
            refused = await http.post(url, json={"text": "x " * 80, "seq": 0})
            assert refused.status_code == 413 and refused.json()["error"]["code"] == "pending_text_limit"
            assert (await http.post(url, json={"text": "Short one.", "seq": 0, "end": True})).status_code == 200
            async with http.stream("GET", f"/v1/tts/sessions/{session}/events") as response:
                events = [e async for e in read_events(response.aiter_lines())]
    assert [e.data["text"] for e in events if e.kind == "segment"] == ["Short one."]


async def test_a_text_body_over_the_limit_ends_the_stream_with_an_error(tone_provider) -> None:
    async with run_server(tone_settings(max_pending_chars=200, ring_ms=100), {"tone": tone_provider}) as server:
        async with httpx.AsyncClient(base_url=server.http_url) as http:
            body = ("word " * 100).encode()  # 500 characters, all before any synthesis can take them
            async with http.stream(
                "POST", "/v1/tts/stream", content=body, headers={"content-type": "text/plain"}
            ) as response:
                events = [e async for e in read_events(response.aiter_lines())]
    errors = [e for e in events if e.kind == "error"]
    assert [e.data["code"] for e in errors] == ["pending_text_limit"]
    assert events[-1].kind == "done"


async def test_sse_sessions_pace_when_asked(tone_server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=tone_server.http_url) as http:
        session = await create(http, max_lead_ms=200)
        await http.post(f"/v1/tts/sessions/{session}/text", json={"text": "one two three four five six.", "end": True})
        started = time.monotonic()
        async with http.stream("GET", f"/v1/tts/sessions/{session}/events") as response:
            events = [e async for e in read_events(response.aiter_lines())]
        elapsed_ms = (time.monotonic() - started) * 1000
    # 480 ms of audio with a 200 ms lead: no sooner than about 280 ms (a lower bound only).
    assert elapsed_ms >= pcm_ms(events) - 200 - 40


async def test_a_malformed_last_event_id_is_ignored(tone_server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=tone_server.http_url) as http:
        session = await create(http)
        await http.post(f"/v1/tts/sessions/{session}/text", json={"text": "Hi there.", "end": True})
        headers = {"Last-Event-ID": "²".encode("latin-1")}  # a Unicode digit int() refuses
        async with http.stream("GET", f"/v1/tts/sessions/{session}/events", headers=headers) as response:
            assert response.status_code == 200
            events = [e async for e in read_events(response.aiter_lines())]
    assert events[0].kind == "ready" and events[-1].kind == "done"


async def test_deeply_nested_json_body_is_a_bad_message_not_a_500(tone_server: RunningServer) -> None:
    # msgspec skips a value before a known key recursively: 1000 levels of it are only 2 kB.
    body = '{"a":' + "[" * 1000 + "]" * 1000 + ',"text":"Hi."}'
    async with httpx.AsyncClient(base_url=tone_server.http_url) as http:
        response = await http.post("/v1/tts/stream", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "bad_message"


async def test_a_finished_sse_session_frees_its_stream_slot_but_keeps_its_events(tone_provider: ToneProvider) -> None:
    async with run_server(tone_settings(max_streams=1), {"tone": tone_provider}) as server, httpx.AsyncClient(
        base_url=server.http_url
    ) as http:
        first = (await http.post("/v1/tts/sessions", json={})).json()
        assert (await http.post("/v1/tts/sessions", json={})).status_code == 503  # the one slot is taken
        await http.post(first["text_url"], json={"text": "Done soon.", "end": True})
        events = await http.get(first["events_url"])
        assert "event: done" in events.text
        await wait_for(lambda: not server.state.streams)
        second = await http.post("/v1/tts/sessions", json={})
        assert second.status_code == 201  # the finished session no longer holds the slot
        again = await http.get(first["events_url"], headers={"Last-Event-ID": "0"})
        assert again.status_code == 200 and "event: done" in again.text


async def test_query_options_beside_a_json_body_are_refused_not_ignored(tone_server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=tone_server.http_url) as http:
        response = await http.post("/v1/tts/stream?format=opus", json={"text": "Hello there."})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "bad_message" and "'format'" in error["message"]
