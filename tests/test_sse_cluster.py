"""SSE sessions across servers (`--redis-url`): a real redis-server and real server processes.

Node A creates, node B takes text, node C reads; resumes and DELETE on other nodes; the owner
SIGKILLed mid-session and a survivor going on; Redis stopped and back.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
import pytest

from stream_server.text import split_sentences

from .processes import ServerProcess, server_process
from .redis_server import RedisServer, redis_server
from .test_sse import Event, expected_ms, pcm_ms, read_events

pytestmark = pytest.mark.skipif(
    __import__("shutil").which("redis-server") is None, reason="redis-server is not installed"
)

# Durations exactly the tone's, as in tests/conftest.py's tone_settings.
NO_PAUSES = ("--sentence-pause-ms", "0", "--paragraph-pause-ms", "0", "--clause-pause-ms", "0")
SENTENCES = [f"Sentence number {n} is spoken here." for n in range(6)]


@asynccontextmanager
async def cluster(count: int, *options: str) -> AsyncIterator[tuple[RedisServer, list[ServerProcess]]]:
    with redis_server() as redis:
        async with AsyncExitStack() as stack:
            nodes = await asyncio.gather(
                *(
                    stack.enter_async_context(server_process("--redis-url", redis.url, *NO_PAUSES, *options))
                    for _ in range(count)
                )
            )
            yield redis, list(nodes)


async def create(node: ServerProcess, **config: object) -> str:
    async with httpx.AsyncClient(base_url=node.http_url) as http:
        response = await http.post("/v1/tts/sessions", json={"sample_rate": 24000, **config})
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def post(node: ServerProcess, session: str, **body: object) -> httpx.Response:
    async with httpx.AsyncClient(base_url=node.http_url) as http:
        return await http.post(f"/v1/tts/sessions/{session}/text", json=body)


async def events(node: ServerProcess, session: str, last_id: int | None = None) -> AsyncIterator[Event]:
    headers = {} if last_id is None else {"Last-Event-ID": str(last_id)}
    async with httpx.AsyncClient(base_url=node.http_url, timeout=20) as http:
        async with http.stream("GET", f"/v1/tts/sessions/{session}/events", headers=headers) as response:
            assert response.status_code == 200
            async for event in read_events(response.aiter_lines()):
                yield event


async def until(stream: AsyncIterator[Event], kind: str, into: list[Event]) -> Event:
    async for event in stream:
        into.append(event)
        if event.kind == kind:
            return event
    raise AssertionError(f"the stream ended before a {kind!r} event: {[e.kind for e in into]}")


async def test_text_on_one_node_audio_on_another_resume_and_delete_on_a_third() -> None:
    async with cluster(3) as (redis, (a, b, c)):
        session = await create(a)
        reader = events(c, session)
        received: list[Event] = []
        assert (await anext(reader)).kind == "ready"
        text = " ".join(SENTENCES)
        assert (await post(b, session, text=text[:40], seq=0)).status_code == 200
        assert (await post(c, session, text=text[40:], seq=1, end=True)).status_code == 200
        dup = await post(a, session, text=text[40:], seq=1)  # a retry on yet another node: ignored
        assert dup.status_code == 200
        ahead = await post(b, session, text="x", seq=5)
        assert ahead.status_code == 409 and ahead.json()["error"]["code"] in ("out_of_order", "stream_ended")
        await until(reader, "done", received)
        await reader.aclose()
        assert [e.data["text"] for e in received if e.kind == "segment"] == split_sentences(text)
        assert pcm_ms(received) == pytest.approx(expected_ms(text), abs=0.1)
        assert [e.id for e in received] == list(range(2, received[-1].id + 1))

        # Resume on node B from the middle: exactly the events after it, byte for byte.
        middle = received[len(received) // 2].id
        resumed = [e async for e in events(b, session, middle)]
        assert [(e.id, e.kind, e.data) for e in resumed] == [
            (e.id, e.kind, e.data) for e in received if e.id > middle
        ]

        # Another key's view: none (no keys here); an unknown id is 404 everywhere.
        async with httpx.AsyncClient(base_url=b.http_url) as http:
            gone = await http.get("/v1/tts/sessions/0123456789abcdef0123456789abcdef/events")
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "unknown_session"

        # DELETE on node A reaches the owner (A) through Redis, for a session read on C, fed on B.
        second = await create(a)
        reader = events(c, second)
        await post(b, second, text=" ".join(SENTENCES * 20), seq=0)
        before: list[Event] = []
        await until(reader, "audio", before)
        async with httpx.AsyncClient(base_url=b.http_url) as http:
            bad = await http.delete(f"/v1/tts/sessions/{second}", params={"played_ms": "soon"})
            assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_message"
            cancel = await http.delete(f"/v1/tts/sessions/{second}", params={"played_ms": "40"})
            assert cancel.json() == {"cancelled": True}
        cancelled = await until(reader, "cancelled", before)
        assert cancelled.data["played_ms"] == 40  # the playback position reached the owner
        await post(c, second, text="After the barge-in.", seq=1, end=True)
        after: list[Event] = []
        await until(reader, "done", after)
        assert [e.data["text"] for e in after if e.kind == "segment"] == ["After the barge-in."]

        # Nothing in Redis names a session or carries no TTL.
        with redis.client() as client:
            keys = client.keys("*")
            assert keys and all(not key.decode().count(session) for key in keys)
            # -1: a key without a TTL (the defect); -2: deleted since KEYS listed it (the session's
            # finish deletes its text and lease as the reader gets `done`).
            ttls = {key: client.pttl(key) for key in keys}
            assert -1 not in ttls.values(), ttls


@pytest.mark.parametrize("end", ["sigkill", "drain"])
async def test_a_survivor_takes_over_from_its_owner_and_loses_no_text(end: str) -> None:
    """The owner SIGKILLed (its lease lapses) or drained by SIGTERM (a rolling update: it hands
    the session off): another node goes on from the last spoken segment."""
    async with cluster(3, "--shutdown-grace-s", "0") as (_, (a, b, c)):
        session = await create(a)
        reader = events(b, session)
        received: list[Event] = []
        assert (await post(c, session, text=" ".join(SENTENCES[:3]) + " ", seq=0)).status_code == 200
        await until(reader, "segment_end", received)
        if end == "sigkill":
            a.process.kill()  # no goodbye: the lease lapses in Redis
        else:
            a.process.send_signal(signal.SIGTERM)  # the drain stops its streams at once (grace 0)
        assert await a.process.wait() == (-signal.SIGKILL if end == "sigkill" else 0)
        # Accepted while nobody runs the stream: it waits in Redis for the next owner.
        assert (await post(c, session, text=" ".join(SENTENCES[3:]), seq=1, end=True)).status_code == 200
        started = time.monotonic()
        moved = await until(reader, "warning", received)
        assert moved.data["code"] == "session_moved"
        assert time.monotonic() - started < 8.0  # the lease's 3 s, then the reader's next look
        await until(reader, "done", received)
        await reader.aclose()
    ids = [e.id for e in received]
    assert ids == sorted(set(ids))  # event ids go on increasing across the takeover
    spoken = [e.data["text"] for e in received if e.kind == "segment"]
    # Every sentence spoken; only the one being spoken at the kill may come twice.
    assert sorted(set(spoken), key=spoken.index) == SENTENCES
    assert len(spoken) - len(set(spoken)) <= 1
    assert not [e for e in received if e.kind == "error"]  # a drain is not the session's end
    if end == "drain":
        assert [line for line in a.log() if line.get("event") == "sse.handed_off"]
    survivors = [line for node in (b, c) for line in node.log() if line.get("event") == "sse.taken_over"]
    assert len(survivors) == 1


async def test_redis_away_refuses_new_sessions_with_503_and_recovers() -> None:
    async with cluster(2) as (redis, (a, b)):
        session = await create(a)
        reader = events(b, session)
        assert (await anext(reader)).kind == "ready"
        redis.stop()
        async with httpx.AsyncClient(base_url=b.http_url) as http:
            refused = await http.post("/v1/tts/sessions", json={})
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "cluster_unavailable"
        rest = [e async for e in reader]  # the reader is told, and its stream ends
        assert [(e.kind, e.data["code"]) for e in rest] == [("error", "cluster_unavailable")]
        redis.start()
        deadline = time.monotonic() + 10
        while True:  # the link notices Redis is back within its watch's period
            async with httpx.AsyncClient(base_url=b.http_url) as http:
                answer = await http.post("/v1/tts/sessions", json={"sample_rate": 24000})
            if answer.status_code == 201 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)  # polling for recovery, bounded by the deadline
        assert answer.status_code == 201, answer.text
        again = answer.json()["id"]
        assert (await post(a, again, text="Back again.", end=True)).status_code == 200
        received = [e async for e in events(a, again)]
    assert [e.data["text"] for e in received if e.kind == "segment"] == ["Back again."]
    for node in (a, b):
        assert not [line for line in node.lines if "Traceback" in line]


async def test_a_keys_characters_per_minute_hold_on_every_node_with_a_429() -> None:
    """Text is charged where it is accepted, once: 100 characters a minute allow 60 on one node
    and 40 on another (not 60 again on the owner as its stream applies them), then 429."""
    key = "k" * 24
    with redis_server() as redis:
        async with AsyncExitStack() as stack:
            options = ("--redis-url", redis.url, "--api-keys", key, "--key-chars-per-minute", "100")
            a, b = await asyncio.gather(
                *(stack.enter_async_context(server_process(*options, *NO_PAUSES)) for _ in range(2))
            )
            headers = {"Authorization": f"Bearer {key}"}
            async with httpx.AsyncClient(headers=headers) as http:
                created = await http.post(f"{a.http_url}/v1/tts/sessions", json={"sample_rate": 24000})
                assert created.status_code == 201, created.text
                path = f"/v1/tts/sessions/{created.json()['id']}/text"
                first = await http.post(f"{b.http_url}{path}", json={"text": "x" * 60, "seq": 0})
                assert first.status_code == 200, first.text
                second = await http.post(f"{a.http_url}{path}", json={"text": "y" * 40, "seq": 1})
                assert second.status_code == 200, second.text
                third = await http.post(f"{b.http_url}{path}", json={"text": "z" * 30, "seq": 2})
                assert third.status_code == 429, third.text
                assert third.json()["error"]["code"] == "rate_limited"
                assert float(third.headers["Retry-After"]) > 0


async def test_redis_restarted_empty_under_a_live_session_leaves_no_key_without_a_ttl() -> None:
    """Redis comes back having forgotten everything (no persistence) while an owner streams: its
    next writes are refused (no session, no lease), it stops, and nothing it writes outlives a TTL."""
    async with cluster(1) as (redis, (a,)):
        session = await create(a)
        text = " ".join(SENTENCES * 3)
        assert (await post(a, session, text=text, end=True)).status_code == 200
        reader = events(a, session)
        received: list[Event] = []
        await until(reader, "segment_end", received)
        redis.stop()
        redis.start()  # empty
        deadline = time.monotonic() + 10
        while not any(line.get("event") == "sse.lease_lost" for line in a.log()):
            assert time.monotonic() < deadline, "the owner did not notice it lost the session"
            await asyncio.sleep(0.05)  # polling the log, bounded by the deadline
        with redis.client() as client:
            keys = client.keys("*")
            # -1: a key without a TTL (the defect); -2: deleted since KEYS listed it (the session's
            # finish deletes its text and lease as the reader gets `done`).
            ttls = {key: client.pttl(key) for key in keys}
            assert -1 not in ttls.values(), ttls
        async with httpx.AsyncClient(base_url=a.http_url) as http:
            gone = await http.post(f"/v1/tts/sessions/{session}/text", json={"text": "More."})
        assert gone.status_code == 404
        await reader.aclose()
