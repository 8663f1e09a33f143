"""What SSE sessions keep after their stream ends, and how fast an open server makes them.

A finished session keeps only its events for resumes; all finished sessions share one budget
(`--sse-finished-mb`), the oldest forgetting first. Without keys, session creation is rate-limited.
"""

from __future__ import annotations

import httpx
import pytest

from stream_server.protocol.sse import SseEvent
from stream_server.providers.tone import ToneProvider
from stream_server.transports.event_log import EventLog, follow

from .conftest import RunningServer, run_server, tone_settings
from .helpers import wait_for
from .test_sse import Event, read_events

# 80 words of tone: 6.4 s of audio, more than the default 5 s kept for resumes.
EIGHTY_WORDS = " ".join(f"Word{i}" for i in range(79)) + " end."
ALICE, BOB = "alice-key-0123456789abcdef", "bob-key-0123456789abcdef"


async def finished_session(http: httpx.AsyncClient, server: RunningServer, **config: object) -> dict:
    """A session given EIGHTY_WORDS and read to its `done`, whose stream has ended (with `last_id`)."""
    created = (await http.post("/v1/tts/sessions", json={"format": "pcm", "sample_rate": 24000, **config})).json()
    await http.post(created["text_url"], json={"text": EIGHTY_WORDS, "end": True})
    async with http.stream("GET", created["events_url"]) as response:
        events = [e async for e in read_events(response.aiter_lines())]
    assert events[-1].kind == "done"
    await wait_for(lambda: not server.state.streams)
    return {**created, "last_id": events[-1].id}


async def resume(http: httpx.AsyncClient, session: dict, events_before_the_end: int) -> list[Event]:
    last_event_id = session["last_id"] - events_before_the_end
    async with http.stream("GET", session["events_url"], headers={"Last-Event-ID": str(last_event_id)}) as response:
        return [e async for e in read_events(response.aiter_lines())]


async def test_finished_sessions_share_one_budget_and_the_oldest_forget_first(tone_provider: ToneProvider) -> None:
    # Each finished session keeps its last 5 s of 24 kHz pcm: 240 kB, ~350 kB as base64 events.
    # A 2 MB budget holds five of them: the sixth makes the first forget its events.
    settings = tone_settings(sse_finished_mb=2)
    async with run_server(settings, {"tone": tone_provider}) as server:
        async with httpx.AsyncClient(base_url=server.http_url) as http:
            sessions = [await finished_session(http, server) for _ in range(6)]
            # The last 2 s (100 events of 20 ms): inside every kept session's resume window.
            oldest, second, newest = [await resume(http, sessions[i], 100) for i in (0, 1, 5)]
            before_the_window = await resume(http, sessions[5], 300)  # 6 s back: never kept
    assert [e.kind for e in oldest] == ["error"] and oldest[0].data["code"] == "resume_unavailable"
    for kept in (second, newest):
        assert [e.id for e in kept] == list(range(kept[-1].id - 99, kept[-1].id + 1)) and kept[-1].kind == "done"
        assert 1800 < sum(e.data["ms"] for e in kept if e.kind == "audio") <= 2000
    assert [e.kind for e in before_the_window] == ["error"]


async def test_a_budget_of_zero_keeps_no_finished_session_and_the_stream_still_finishes(
    tone_provider: ToneProvider,
) -> None:
    async with run_server(tone_settings(sse_finished_mb=0), {"tone": tone_provider}) as server:
        async with httpx.AsyncClient(base_url=server.http_url) as http:
            session = await finished_session(http, server)
            events = await resume(http, session, 10)
    assert [e.kind for e in events] == ["error"] and events[0].data["code"] == "resume_unavailable"


async def test_text_to_a_finished_session_is_refused_and_only_its_owner_sees_it(tone_provider: ToneProvider) -> None:
    settings = tone_settings(api_keys=(ALICE, BOB))
    async with run_server(settings, {"tone": tone_provider}) as server:
        alice = httpx.AsyncClient(base_url=server.http_url, headers={"Authorization": f"Bearer {ALICE}"})
        bob = httpx.AsyncClient(base_url=server.http_url, headers={"Authorization": f"Bearer {BOB}"})
        async with alice, bob:
            session = await finished_session(alice, server)
            late = await alice.post(session["text_url"], json={"text": "More."})
            stolen = await bob.post(session["text_url"], json={"text": "More."})
            cancelled = await alice.delete(session["events_url"].removesuffix("/events"))
    assert late.status_code == 409 and late.json()["error"]["code"] == "stream_ended"
    assert stolen.status_code == 404 and stolen.json()["error"]["code"] == "unknown_session"
    assert cancelled.status_code == 200  # nothing left to cancel: still its owner's to ask


async def test_an_open_server_limits_how_fast_sessions_are_made(tone_provider: ToneProvider) -> None:
    async with run_server(tone_settings(open_sessions_per_minute=3), {"tone": tone_provider}) as server:
        async with httpx.AsyncClient(base_url=server.http_url) as http:
            made = [await http.post("/v1/tts/sessions", json={}) for _ in range(4)]
            one_shot = await http.post("/v1/tts/stream", json={"text": "Still served."})
    assert [r.status_code for r in made] == [201, 201, 201, 429]
    refused = made[-1]
    assert refused.json()["error"]["code"] == "rate_limited" and 0 < float(refused.headers["retry-after"]) <= 20
    assert one_shot.status_code == 200  # a request-bound stream is not a session: not counted


async def test_with_keys_each_keys_own_limit_applies_not_the_open_servers(tone_provider: ToneProvider) -> None:
    settings = tone_settings(api_keys=(ALICE,), open_sessions_per_minute=1)
    async with run_server(settings, {"tone": tone_provider}) as server:
        async with httpx.AsyncClient(base_url=server.http_url, headers={"Authorization": f"Bearer {ALICE}"}) as http:
            made = [await http.post("/v1/tts/sessions", json={}) for _ in range(3)]
    assert [r.status_code for r in made] == [201, 201, 201]


# -- the log itself, without sockets ---------------------------------------------------------------


def audio_event(event_id: int, ms: float = 100.0) -> SseEvent:
    return SseEvent(event_id, "audio", b'{"audio":"' + b"A" * 400 + b'"}', ms)


async def replay(log: EventLog, last_event_id: int | None) -> list[bytes]:
    written: list[bytes] = []

    async def write(data: bytes) -> None:
        written.append(data)

    await follow(log, last_event_id, keepalive_s=60, write=write, delivered=lambda: None)
    return written


async def test_a_forgotten_log_says_so_once_and_ends() -> None:
    log = EventLog(resume_ms=1000)
    for event_id in range(1, 6):
        log.append(audio_event(event_id))
    log.finish()
    assert len(await replay(log, None)) == 5
    assert log.kept_bytes > 5 * 400
    log.forget()
    assert log.kept_bytes == 0
    for last_event_id in (0, 3):
        written = await replay(log, last_event_id)
        assert len(written) == 1 and b"resume_unavailable" in written[0]
    for nothing_missed in (None, 5):  # a reader that took everything misses nothing
        assert await replay(log, nothing_missed) == []


@pytest.mark.parametrize("resume_ms", [0, 250])
async def test_the_log_keeps_what_the_resume_window_holds_and_weighs_it(resume_ms: float) -> None:
    log = EventLog(resume_ms=resume_ms)
    for event_id in range(1, 11):
        log.append(audio_event(event_id))
    log.finish()
    await replay(log, None)
    kept = next(events for i in range(11) if (events := log.after(i)) is not None)
    assert sum(e.audio_ms for e in kept) <= resume_ms + 100
    assert log.kept_bytes == sum(len(e.data) for e in kept) + len(kept) * 120
