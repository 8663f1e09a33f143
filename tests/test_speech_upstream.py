"""`POST /v1/audio/speech` on a server whose `openai` provider talks to the OpenAI emulator: an
upstream that is down is refused before the status line, and the base URL takes both forms."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from loadtest.emulators.common import EmulatorOptions, Fault
from loadtest.emulators.openai import create_app
from stream_server.providers.http import CircuitBreaker
from stream_server.providers.openai import OpenAIProvider
from stream_server.providers.tone import ToneProvider

from .conftest import RunningServer, run_asgi, run_server, tone_settings

KEY = "sk-proj-emulated-0123456789abcdefXYZ"
COOLDOWN_S = 30
SPEECH = {"model": "tts-1", "voice": "alloy", "input": "Hello there. How are you?", "response_format": "pcm"}


@asynccontextmanager
async def server_on(options: EmulatorOptions, url_suffix: str = "", **overrides: Any) -> AsyncIterator[RunningServer]:
    async with run_asgi(create_app(options)) as url:
        fields: dict[str, Any] = {
            "providers": ("openai", "tone"),
            "provider": "openai",
            "openai_base_url": url + url_suffix,
            "openai_api_key": KEY,
            "http_retries": 0,
            "breaker_failures": 1,
            "breaker_cooldown_s": COOLDOWN_S,
            **overrides,
        }
        settings = tone_settings(**fields)
        provider = OpenAIProvider.from_settings(settings.openai, settings.shared_http)
        try:
            async with run_server(settings, {"openai": provider, "tone": ToneProvider()}) as server:
                yield server
        finally:
            await provider.aclose()


async def test_the_only_provider_behind_an_open_breaker_is_a_503_with_retry_after() -> None:
    options = EmulatorOptions(api_key=KEY, fault=Fault.SERVER_ERROR)
    async with server_on(options) as server, httpx.AsyncClient(base_url=server.http_url) as http:
        # The first request finds the upstream failing only after its status line went out.
        first = await http.post("/v1/audio/speech", json=SPEECH)
        assert first.status_code == 200 and first.content == b""
        asked = len(options.requests)
        refused = await http.post("/v1/audio/speech", json=SPEECH)
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "provider_unavailable"
    assert COOLDOWN_S - 5 <= int(refused.headers["retry-after"]) <= COOLDOWN_S
    assert len(options.requests) == asked  # the refusal cost the upstream nothing


async def test_with_a_fallback_an_open_breaker_still_speaks() -> None:
    options = EmulatorOptions(api_key=KEY, fault=Fault.SERVER_ERROR)
    async with server_on(options, fallback=("tone",)) as server, httpx.AsyncClient(base_url=server.http_url) as http:
        for _ in range(2):  # the second finds the breaker open
            response = await http.post("/v1/audio/speech", json=SPEECH)
            assert response.status_code == 200 and len(response.content) > 0


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/"])
async def test_the_openai_base_url_works_with_or_without_v1(suffix: str) -> None:
    options = EmulatorOptions(api_key=KEY)
    async with server_on(options, url_suffix=suffix) as server, httpx.AsyncClient(base_url=server.http_url) as http:
        response = await http.post("/v1/audio/speech", json=SPEECH)
    assert response.status_code == 200 and len(response.content) > 0
    assert [request["path"] for request in options.requests] == ["/v1/audio/speech"] * 2


def test_the_breaker_says_how_long_it_stays_closed_to_requests() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failures=1, cooldown_s=30, clock=lambda: now[0])
    assert breaker.closed_for_s() is None
    breaker.failure()
    now[0] = 10.0
    assert breaker.closed_for_s() == 20.0
    now[0] = 30.0
    assert breaker.closed_for_s() is None  # half open: the next request is the trial
    assert breaker.allow()
    assert breaker.closed_for_s() == 1.0  # the trial is out: ask again soon
    breaker.success()
    assert breaker.closed_for_s() is None
