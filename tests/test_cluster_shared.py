"""Per-key limits, browser tokens and cloud request slots shared by servers through one real
redis-server: what one server grants, another counts; Redis going away and coming back."""

from __future__ import annotations

import json
import signal
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from loadtest.emulators.common import EmulatorOptions
from stream_server.providers.tone import ToneProvider

from .conftest import RunningServer, run_server, tone_settings
from .helpers import ProviderRun, receive, receive_all, receive_until, send
from .processes import server_process
from .redis_server import RedisServer, redis_server
from .test_provider_openai import KEY as UPSTREAM_KEY
from .test_provider_openai import RATE, emulated, openai_from, settings_for

KEY = "sk-cluster-alpha-0123456789"
BEARER = {"Authorization": f"Bearer {KEY}"}
DEADLINE_S = 10


@pytest.fixture
def redis() -> AsyncIterator[RedisServer]:
    with redis_server(password="s3cret-redis-pw") as server:
        yield server


@asynccontextmanager
async def cluster(redis: RedisServer, count: int, **overrides: Any) -> AsyncIterator[list[RunningServer]]:
    """`count` in-process servers with one key, sharing `redis`."""
    tone = ToneProvider()
    settings = tone_settings(api_keys=(KEY,), redis_url=redis.url, **overrides)
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(run_server(settings, {"tone": tone})) for _ in range(count)]


async def opened(url: str) -> tuple[ClientConnection, dict[str, Any]]:
    """A WebSocket and its first message (`ready`, or the `error` that refused the stream)."""
    ws = await connect(url, additional_headers=BEARER)
    return ws, json.loads(await ws.recv())


async def until(condition: Any, what: str) -> None:
    with anyio.fail_after(DEADLINE_S):
        while not await condition():
            await anyio.sleep(0.05)  # polling a condition, bounded by the deadline


def redis_keys(redis: RedisServer) -> list[bytes]:
    with redis.client() as client:
        return list(client.scan_iter("*"))


async def test_a_keys_max_streams_holds_across_two_servers(redis: RedisServer) -> None:
    async with cluster(redis, 2, key_max_streams=1) as (a, b):
        first, ready = await opened(a.ws_url)
        assert ready["type"] == "ready"
        second, refusal = await opened(b.ws_url)
        assert refusal["type"] == "error" and refusal["code"] == "too_many_streams"
        await second.close()
        await first.close()

        async def b_takes_one() -> bool:  # a's lease goes as a's stream closes
            ws, message = await opened(b.ws_url)
            await ws.close()
            return message["type"] == "ready"

        await until(b_takes_one, "b opens once a's stream is closed")
        # Redis names no key: only hashes; every key has a TTL (or is the one token secret).
        keys = redis_keys(redis)
        assert keys and not any(b"alpha" in k for k in keys)
        with redis.client() as client:
            assert all(client.pttl(k) > 0 for k in keys)


async def test_characters_per_minute_hold_across_two_servers(redis: RedisServer) -> None:
    async with cluster(redis, 2, key_chars_per_minute=60) as (a, b):
        body = {"model": "tts-1", "voice": "alloy", "response_format": "pcm"}
        async with httpx.AsyncClient(headers=BEARER, timeout=10) as http:
            spent = await http.post(f"{a.http_url}/v1/audio/speech", json={**body, "input": "x" * 50})
            refused = await http.post(f"{b.http_url}/v1/audio/speech", json={**body, "input": "y" * 20})
            fits = await http.post(f"{b.http_url}/v1/audio/speech", json={**body, "input": "z" * 9})
    assert spent.status_code == 200 and fits.status_code == 200
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
    # 10 characters left of 60 a minute: 20 need 10 more, one a second.
    assert 9 <= float(refused.headers["retry-after"]) <= 11


async def test_a_token_minted_on_one_server_opens_one_stream_on_any(redis: RedisServer) -> None:
    async with cluster(redis, 3) as (a, b, c):
        async with httpx.AsyncClient(headers=BEARER) as http:
            token = (await http.post(f"{a.http_url}/v1/tokens")).json()["token"]
        async with connect(f"{b.ws_url}?token={token}") as ws:
            assert (await receive(ws))["type"] == "ready"
            await send(ws, type="text", text="Hello.")
            await send(ws, type="end")
            spoken = await receive_all(ws)
            assert spoken.messages()[-1]["type"] == "done" and spoken.frames()
        async with httpx.AsyncClient() as http:
            replayed = await http.get(f"{c.http_url}/v1/tts/stream?token={token}", headers={
                "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            })  # fmt: skip
    assert replayed.status_code == 401
    assert "already used" in replayed.json()["error"]["message"]
    assert not any(token.encode() in k or b"nonce" in k for k in redis_keys(redis))


async def test_a_providers_concurrency_of_one_is_shared_by_two_servers(redis: RedisServer) -> None:
    # Alice's long sentence holds the account's one slot on server a while the upstream answers;
    # Bob on server b waits his budget (0.5 s) for it, then hears the fallback voice.
    options = EmulatorOptions(api_key=UPSTREAM_KEY, rtf=1)
    long_sentence = " ".join(["word"] * 49) + "."
    async with emulated(options) as url, AsyncExitStack() as stack:
        overrides = {"openai_concurrency": 1, "openai_timeout_s": 0.5, "fallback": ("tone",), "redis_url": redis.url}
        settings = settings_for(url, **overrides)
        servers = []
        for _ in range(2):
            provider = openai_from(settings)
            stack.push_async_callback(provider.aclose)
            providers = {"openai": provider, "tone": ToneProvider()}
            servers.append(await stack.enter_async_context(run_server(settings, providers)))
        a, b = servers
        async with connect(f"{a.ws_url}?format=pcm&sample_rate={RATE}") as alice:
            await receive(alice)
            await send(alice, type="text", text=long_sentence)
            await send(alice, type="end")
            await receive_until(alice, "segment")
            await alice.recv()  # her first audio: the slot is hers now
            async with connect(f"{b.ws_url}?format=pcm&sample_rate={RATE}") as ws:
                await receive(ws)
                await send(ws, type="text", text="One two three.")
                await send(ws, type="end")
                bob = ProviderRun(await receive_all(ws), [])
            await receive_all(alice)
    assert bob.events() == [("segment", 0), ("segment_end", 0), ("warning", 0)]
    assert "no free request slot within 0.5 s" in bob.message("warning")["message"]
    assert [r["json"]["input"] for r in options.requests] == [long_sentence]


async def test_streams_go_on_while_redis_is_away_and_sharing_returns_with_it(redis: RedisServer) -> None:
    async with cluster(redis, 2, key_max_streams=1) as (a, b), httpx.AsyncClient() as http:
        redis.stop()

        async def degraded() -> bool:
            ready = await http.get(f"{a.http_url}/readyz")
            return ready.status_code == 200 and "redis" in ready.json()["degraded"]

        await until(degraded, "a says redis is away")
        # Each server counts its own streams now: one each, and a token minted meanwhile works.
        ws_a, ready_a = await opened(a.ws_url)
        ws_b, ready_b = await opened(b.ws_url)
        assert ready_a["type"] == ready_b["type"] == "ready"
        await send(ws_a, type="text", text="Still speaking.")
        await send(ws_a, type="end")
        spoken = await receive_all(ws_a)
        assert spoken.messages()[-1]["type"] == "done" and spoken.frames()
        await ws_a.close()
        await ws_b.close()
        token = (await http.post(f"{a.http_url}/v1/tokens", headers=BEARER)).json()["token"]
        async with connect(f"{a.ws_url}?token={token}") as ws:
            assert (await receive(ws))["type"] == "ready"

        redis.start()

        async def recovered() -> bool:
            ready = await http.get(f"{a.http_url}/readyz")
            return ready.json()["degraded"] == [] and (await http.get(f"{b.http_url}/readyz")).json()["degraded"] == []

        await until(recovered, "both see redis back")
        first, ready = await opened(a.ws_url)
        second, refusal = await opened(b.ws_url)
        assert ready["type"] == "ready" and refusal["code"] == "too_many_streams"
        await first.close()
        await second.close()


async def test_a_killed_servers_streams_stop_counting_within_the_lease(redis: RedisServer) -> None:
    options = ("--api-keys", KEY, "--key-max-streams", "1", "--redis-url", redis.url, "--redis-lease-ttl-s", "1.5")
    async with server_process(*options) as doomed, server_process(*options) as survivor:
        held, ready = await opened(doomed.ws_url)
        assert ready["type"] == "ready"
        refused, refusal = await opened(survivor.ws_url)
        assert refusal["code"] == "too_many_streams"
        await refused.close()
        doomed.process.send_signal(signal.SIGKILL)
        await doomed.process.wait()
        started = anyio.current_time()

        async def survivor_opens() -> bool:
            ws, message = await opened(survivor.ws_url)
            await ws.close()
            return message["type"] == "ready"

        await until(survivor_opens, "the dead server's lease expires")
        assert anyio.current_time() - started <= 1.5 + 1.5  # the TTL, and a margin for a busy machine
        with pytest.raises(Exception):
            await held.recv()
        assert redis.password is not None and not any(redis.password in line for line in survivor.lines)
