"""A cloud provider's concurrency slots are held only while its upstream answers.

A client that stops reading must not keep a slot (its segment's audio waits in the server, not in
the upstream's response), and a stream that finds every slot taken waits no longer than its
first-audio budget before the fallback or `provider_timeout`. Real server, real OpenAI emulator.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
from websockets.asyncio.client import connect

from loadtest.emulators.common import EmulatorOptions, Fault
from stream_server.providers.tone import ToneProvider

from .conftest import RunningServer, run_server
from .helpers import ProviderRun, receive, receive_all, receive_until, send
from .test_provider_openai import KEY, RATE, emulated, openai_from, settings_for

SENTENCE = "One two three four five six seven eight nine ten."


@asynccontextmanager
async def openai_server(options: EmulatorOptions, **overrides: Any) -> AsyncIterator[RunningServer]:
    async with emulated(options) as url:
        settings = settings_for(url, **overrides)
        provider = openai_from(settings)
        providers = {"openai": provider, "tone": ToneProvider()}
        try:
            async with run_server(settings, {name: providers[name] for name in settings.providers}) as server:
                yield server
        finally:
            await provider.aclose()


async def ring_full_waits(http: httpx.AsyncClient) -> float:
    text = (await http.get("/metrics")).text
    match = re.search(r"^tts_ring_full_waits_total (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def one_stream(server: RunningServer, text: str) -> ProviderRun:
    async with connect(f"{server.ws_url}?format=pcm&sample_rate={RATE}") as ws:
        await receive(ws)  # ready
        await send(ws, type="text", text=text)
        await send(ws, type="end")
        return ProviderRun(await receive_all(ws), [])


async def test_a_client_that_stops_reading_holds_no_request_slot() -> None:
    # One slot in all. Alice's SSE session gets twenty sentences and nobody reads its events: its
    # ring fills and its synthesis waits. Bob's stream on the same provider must still be served.
    options = EmulatorOptions(api_key=KEY, rtf=10)
    async with openai_server(options, openai_concurrency=1, openai_timeout_s=2.0) as server:
        async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as http:
            created = await http.post("/v1/tts/sessions", json={"format": "pcm", "sample_rate": RATE})
            text_url = created.json()["text_url"]
            assert (await http.post(text_url, json={"text": " ".join([SENTENCE] * 20), "end": True})).status_code == 200
            with anyio.fail_after(15):
                while await ring_full_waits(http) < 1:  # alice's synthesis is waiting for her
                    await anyio.sleep(0.02)
            bob = await one_stream(server, SENTENCE)
            with anyio.fail_after(15):  # alice's look-ahead is synthesized; then she holds no slot
                while (await http.get("/healthz")).json()["providers"]["openai"]["in_flight"]:
                    await anyio.sleep(0.02)
            assert (await http.get("/healthz")).json()["streams"] == 1  # alice's session is still there
    assert bob.events() == [("segment", 0), ("segment_end", 0)]
    assert abs(bob.message("segment_end")["audio_ms"] - 800) <= 40
    # Alice's unread session asked for what fits its ring (2 s: three segments), its log (200 ms)
    # and its look-ahead (one segment), not for her twenty sentences.
    assert len(options.requests) - 1 <= 5


async def test_waiting_for_a_slot_ends_in_the_fallback_within_the_budget() -> None:
    # Alice's long sentence streams from the upstream in real time (4 s) and holds the only slot
    # while it does: that is the upstream answering. Bob, arriving meanwhile, waits at most his
    # first-audio budget (0.5 s) for the slot, then hears the fallback voice.
    options = EmulatorOptions(api_key=KEY, rtf=1)
    long_sentence = " ".join(["word"] * 49) + "."
    overrides = {"openai_concurrency": 1, "openai_timeout_s": 0.5, "fallback": ("tone",)}
    async with openai_server(options, **overrides) as server:
        async with connect(f"{server.ws_url}?format=pcm&sample_rate={RATE}") as alice:
            await receive(alice)
            await send(alice, type="text", text=long_sentence)
            await send(alice, type="end")
            heard = await receive_until(alice, "segment")
            heard.items.append(await alice.recv())  # her first audio: the slot is hers now
            bob = await one_stream(server, SENTENCE)
            heard.items += (await receive_all(alice)).items
            alices = ProviderRun(heard, [])
    assert bob.events() == [("segment", 0), ("segment_end", 0), ("warning", 0)]
    warning = bob.message("warning")
    assert warning["code"] == "provider_fallback" and "no free request slot within 0.5 s" in warning["message"]
    assert alices.events() == [("segment", 0), ("segment_end", 0)]
    assert abs(alices.message("segment_end")["audio_ms"] - 49 * 80) <= 40
    assert [r["json"]["input"] for r in options.requests] == [long_sentence]


async def test_an_open_breaker_makes_the_server_degraded_not_unready() -> None:
    options = EmulatorOptions(api_key=KEY, fault=Fault.SERVER_ERROR)
    async with openai_server(options, breaker_failures=1, http_retries=0) as server:
        failed = await one_stream(server, SENTENCE)
        async with httpx.AsyncClient(base_url=server.http_url) as http:
            ready = await http.get("/readyz")
    assert failed.message("error")["code"] == "provider_unavailable"
    assert ready.status_code == 200
    body = ready.json()
    assert body["ready"] is True and body["degraded"] == ["openai"]
    assert body["providers"]["openai"]["breaker_open"] is True and body["providers"]["tone"]["breaker_open"] is False


async def test_a_server_whose_only_provider_fails_is_unready() -> None:
    options = EmulatorOptions(api_key=KEY, fault=Fault.SERVER_ERROR)
    async with openai_server(options, breaker_failures=1, http_retries=0, providers=("openai",)) as server:
        await one_stream(server, SENTENCE)
        async with httpx.AsyncClient(base_url=server.http_url) as http:
            ready = await http.get("/readyz")
    assert ready.status_code == 503 and ready.json()["degraded"] == ["openai"]
