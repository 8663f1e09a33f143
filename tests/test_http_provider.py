"""The shared cloud-provider machinery: breaker, rate limits, retries before the first audio only."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from stream_server.providers import ProviderError
from stream_server.providers.base import PcmChunk, VoiceInfo, VoiceOptions
from stream_server.providers.http import CircuitBreaker, HttpProvider, HttpSettings, RateLimit, raise_for_status

from .conftest import run_asgi


def test_breaker_opens_after_repeated_failures_and_probes_after_the_cooldown() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failures=3, cooldown_s=10, clock=lambda: now[0])
    for _ in range(2):
        breaker.failure()
        assert breaker.allow()
    breaker.failure()
    assert breaker.state == "open" and not breaker.allow()
    now[0] = 10.0
    assert breaker.allow()  # one trial request
    assert not breaker.allow()  # the others still fail fast
    breaker.failure()  # the trial failed: open again, for a new cooldown
    assert not breaker.allow()
    now[0] = 20.0
    assert breaker.allow()
    breaker.success()
    assert breaker.state == "closed" and breaker.allow()


def test_rate_limit_waits_for_the_reset_when_nothing_remains() -> None:
    now = [100.0]
    limit = RateLimit(clock=lambda: now[0])
    assert limit.update({"x-ratelimit-remaining": "2", "x-ratelimit-reset": "30"}) is None
    assert limit.delay() == 0
    assert limit.update({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "30"}) == 30
    assert limit.delay() == pytest.approx(30)
    now[0] = 120.0
    assert limit.delay() == pytest.approx(10)
    assert limit.update({"retry-after": "45"}, refused=True) == 45
    assert limit.delay() == pytest.approx(45)


class Scripted:
    """An upstream answering each request with the next of `answers`: a status, or audio."""

    def __init__(self, *answers: int | str) -> None:
        self.answers = list(answers)
        self.requests = 0

    def app(self) -> Starlette:
        async def speech(request: Request) -> Response:
            self.requests += 1
            answer = self.answers.pop(0) if self.answers else "audio"
            if isinstance(answer, int):
                return Response(status_code=answer, headers={"Retry-After": "0"})

            async def body() -> AsyncGenerator[bytes, None]:
                yield np.full(2400, 1000, np.int16).tobytes()
                if answer == "cutoff":
                    raise RuntimeError("the connection drops mid-answer")
                yield np.full(2400, 1000, np.int16).tobytes()

            return StreamingResponse(body(), media_type="audio/pcm")

        return Starlette(routes=[Route("/speech", speech, methods=["POST"])])


class RawPcm(HttpProvider):
    name = "raw"

    @property
    def voices(self) -> list[VoiceInfo]:
        return [VoiceInfo("v", 24000, "en")]

    async def _attempt(self, text: str, options: VoiceOptions) -> AsyncGenerator[PcmChunk, None]:
        async with self._client.stream("POST", "/speech", json={"input": text}) as response:
            self._observe(response)
            await raise_for_status(response, self.name)
            async for data in response.aiter_bytes():
                samples = np.frombuffer(data[: len(data) // 2 * 2], "<i2").astype(np.float32) / 32768
                yield PcmChunk(samples, 24000)


async def synthesize(upstream: Scripted, **settings) -> tuple[int, ProviderError | None]:
    """Samples produced, and the error the segment ended with (if any)."""
    async with run_asgi(upstream.app()) as base:
        provider = RawPcm(HttpSettings(base_url=base, backoff_s=0.01, max_backoff_s=0.05, **settings))
        produced = 0
        try:
            async for chunk in provider.synthesize("Hello.", VoiceOptions("v")):
                produced += len(chunk.samples)
        except ProviderError as exc:
            return produced, exc
        finally:
            await provider.aclose()
    return produced, None


async def test_a_failure_before_audio_is_retried_and_the_audio_comes_once() -> None:
    upstream = Scripted(503, 429, "audio")
    produced, error = await synthesize(upstream, max_retries=2)
    assert error is None and produced == 4800
    assert upstream.requests == 3


async def test_retries_stop_at_the_limit() -> None:
    upstream = Scripted(500, 500, 500, "audio")
    produced, error = await synthesize(upstream, max_retries=1)
    assert error is not None and error.code == "provider_unavailable" and "500" in str(error)
    assert upstream.requests == 2 and produced == 0


@pytest.mark.parametrize(("status", "code"), [(401, "provider_auth"), (403, "provider_auth"), (400, "provider_rejected")])
async def test_refusals_are_not_retried(status: int, code: str) -> None:
    upstream = Scripted(status, "audio")
    _, error = await synthesize(upstream, max_retries=3)
    assert error is not None and error.code == code
    assert upstream.requests == 1


async def test_a_cut_off_answer_is_not_retried_once_audio_went_out() -> None:
    upstream = Scripted("cutoff", "audio")
    produced, error = await synthesize(upstream, max_retries=3)
    assert error is not None and error.code == "provider_unavailable"
    assert upstream.requests == 1 and produced == 2400  # the first half, once; never twice


async def test_an_open_breaker_fails_fast_without_a_request() -> None:
    upstream = Scripted(500, 500, 500, 500)
    async with run_asgi(upstream.app()) as base:
        settings = HttpSettings(base_url=base, max_retries=0, breaker_failures=2, breaker_cooldown_s=60)
        provider = RawPcm(settings)
        for _ in range(2):
            with pytest.raises(ProviderError):
                async for _chunk in provider.synthesize("x", VoiceOptions("v")):
                    pass
        with pytest.raises(ProviderError, match="failing repeatedly") as caught:
            async for _chunk in provider.synthesize("x", VoiceOptions("v")):
                pass
        assert caught.value.code == "provider_unavailable"
        assert upstream.requests == 2
        assert provider.stats()["breaker_open"] == 1
        await provider.aclose()


async def test_a_trial_that_ends_without_a_verdict_lets_the_next_request_probe() -> None:
    # Half open, the one trial request is refused for its own reasons (a 400): that says nothing
    # of the upstream's health, so the breaker must not wait forever for the trial's verdict.
    upstream = Scripted(500, 400, "audio")
    now = [0.0]
    async with run_asgi(upstream.app()) as base:
        provider = RawPcm(HttpSettings(base_url=base, max_retries=0))
        provider._breaker = CircuitBreaker(failures=1, cooldown_s=10, clock=lambda: now[0])
        outcomes = []
        for _ in range(3):
            try:
                async for _chunk in provider.synthesize("x", VoiceOptions("v")):
                    pass
                outcomes.append("audio")
            except ProviderError as exc:
                outcomes.append(exc.code)
            now[0] += 11  # past the cooldown each time
        await provider.aclose()
    assert outcomes == ["provider_unavailable", "provider_rejected", "audio"]
    assert upstream.requests == 3 and provider.stats()["breaker_open"] == 0


async def test_the_key_is_sent_but_never_shown() -> None:
    seen: list[str] = []

    async def speech(request: Request) -> Response:
        seen.append(request.headers.get("authorization", ""))
        return Response(status_code=401)

    async with run_asgi(Starlette(routes=[Route("/speech", speech, methods=["POST"])])) as base:
        provider = RawPcm(HttpSettings(base_url=base, api_key="sk-very-secret"))
        with pytest.raises(ProviderError) as caught:
            async for _chunk in provider.synthesize("x", VoiceOptions("v")):
                pass
        await provider.aclose()
    assert seen == ["Bearer sk-very-secret"]
    assert "sk-very-secret" not in str(caught.value) and "sk-very-secret" not in repr(provider.settings)
