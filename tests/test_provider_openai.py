"""The `openai` provider against the OpenAI emulator on loopback, driven through the real WebSocket."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from typing import Any

import httpx
import numpy as np
import pytest
from websockets.asyncio.client import connect

from loadtest.emulators.common import EmulatorOptions, Fault, expected_ms, speech
from loadtest.emulators.openai import create_app
from stream_server.providers.base import ProviderError, VoiceOptions
from stream_server.providers.http import HttpSettings
from stream_server.providers.openai import OpenAIProvider, _duration_s, _generic_rate_limit
from stream_server.providers.tone import ToneProvider
from stream_server.settings import Settings

from .conftest import run_asgi, run_server, tone_settings
from .helpers import ProviderRun, receive, receive_all, rms, send

KEY = "sk-proj-emulated-0123456789abcdefXYZ"
RATE = 24000
FRAME_MS = 20
TWO_SENTENCES = "Hello there my friend. How are you today?"


Run = ProviderRun


def openai_from(settings: Settings, **options: Any) -> OpenAIProvider:
    """The provider as the server builds it from `settings`: its own, and the shared HTTP ones."""
    return OpenAIProvider.from_settings(settings.openai, settings.shared_http, **options)


def settings_for(url: str, fallback: tuple[str, ...] = (), **overrides: Any) -> Settings:
    fields: dict[str, Any] = {
        "providers": ("openai", "tone"),
        "provider": "openai",
        "fallback": fallback,
        "openai_base_url": url,
        "openai_api_key": KEY,
        "http_retries": 1,
        "openai_timeout_s": 5.0,
        **overrides,
    }
    return tone_settings(**fields)


@asynccontextmanager
async def emulated(options: EmulatorOptions) -> AsyncIterator[str]:
    async with run_asgi(create_app(options)) as url:
        yield url


async def stream(
    options: EmulatorOptions,
    text: str = TWO_SENTENCES,
    *,
    query: str = "",
    fallback: tuple[str, ...] = (),
    url_suffix: str = "",
    **overrides: Any,
) -> Run:
    """One WebSocket stream through stream_server, whose `openai` provider talks to the emulator."""
    async with emulated(options) as url:
        settings = settings_for(url + url_suffix, fallback, **overrides)
        provider = openai_from(settings)
        try:
            async with (
                run_server(settings, {"openai": provider, "tone": ToneProvider()}) as server,
                connect(f"{server.ws_url}?format=pcm&sample_rate={RATE}{query}") as ws,
            ):
                ready = await receive(ws)
                assert isinstance(ready, dict) and ready["type"] == "ready"
                await send(ws, type="text", text=text)
                await send(ws, type="end")
                transcript = await receive_all(ws)
                transcript.items.insert(0, ready)
        finally:
            await provider.aclose()
    return Run(transcript, options.requests)


def assert_audio_matches(run: Run, tolerance_ms: float = 2 * FRAME_MS, speed: float = 1.0) -> None:
    segments = run.segment_audio()
    assert segments, "no audio"
    for text, samples in segments.items():
        duration = 1000 * len(samples) / RATE
        assert abs(duration - expected_ms(text) / speed) <= tolerance_ms, (text, duration)
        assert rms(samples) > 0.05, f"silent audio for {text!r}"


# -- audio end to end ----------------------------------------------------------------------------


async def test_pcm_streams_each_segment_with_the_right_request() -> None:
    run = await stream(EmulatorOptions(api_key=KEY, rtf=20))
    assert run.events() == [("segment", 0), ("segment_end", 0), ("segment", 1), ("segment_end", 1)]
    assert_audio_matches(run)
    assert [r["json"]["input"] for r in run.requests] == ["Hello there my friend.", "How are you today?"]
    request = run.requests[0]
    assert request["path"] == "/v1/audio/speech"
    assert request["headers"]["authorization"] == "Bearer <right key>"
    assert request["headers"]["content-type"] == "application/json"
    assert request["json"] == {
        "model": "gpt-4o-mini-tts",
        "input": "Hello there my friend.",
        "voice": "alloy",
        "response_format": "pcm",
        "speed": 1.0,
    }


async def test_pcm_audio_is_the_upstreams_sample_for_sample() -> None:
    """The emulator cuts pcm at odd byte counts: no byte may be lost or shifted at the seams."""
    options = EmulatorOptions(api_key=KEY, chunk_ms=7)
    async with emulated(options) as url:
        provider = openai_from(settings_for(url))
        try:
            chunks = [c async for c in provider.synthesize("One two three four.", VoiceOptions("alloy"))]
        finally:
            await provider.aclose()
    assert len(chunks) > 1 and {c.sample_rate for c in chunks} == {RATE}
    got = np.concatenate([c.samples for c in chunks])
    want = speech("One two three four.", RATE).astype(np.float32) / 32768
    np.testing.assert_allclose(got, want, atol=1e-6)


@pytest.mark.parametrize(
    ("response_format", "tolerance_ms"),
    # AAC in ADTS cannot signal its encoder priming (1024 samples): that silence stays, up to the
    # server's leading-silence limit (30 ms).
    [("mp3", 2 * FRAME_MS), ("opus", 2 * FRAME_MS), ("flac", 2 * FRAME_MS), ("wav", 2 * FRAME_MS), ("aac", 80)],
)
async def test_compressed_formats_are_decoded_as_they_stream(response_format: str, tolerance_ms: float) -> None:
    run = await stream(EmulatorOptions(api_key=KEY, rtf=20), openai_response_format=response_format)
    assert run.events() == [("segment", 0), ("segment_end", 0), ("segment", 1), ("segment_end", 1)]
    assert_audio_matches(run, tolerance_ms)
    assert {r["json"]["response_format"] for r in run.requests} == {response_format}


@pytest.mark.parametrize("response_format", ["pcm", "opus", "mp3"])
async def test_sse_stream_format(response_format: str) -> None:
    run = await stream(
        EmulatorOptions(api_key=KEY, rtf=20), openai_stream_format="sse", openai_response_format=response_format
    )
    assert run.events() == [("segment", 0), ("segment_end", 0), ("segment", 1), ("segment_end", 1)]
    assert_audio_matches(run)
    assert all(r["json"]["stream_format"] == "sse" for r in run.requests)


@pytest.mark.parametrize(("response_format", "stream_format"), [("pcm", "audio"), ("mp3", "audio"), ("pcm", "sse")])
async def test_audio_comes_out_while_the_answer_still_streams(response_format: str, stream_format: str) -> None:
    text = " ".join(["word"] * 25)  # 2 s of audio, sent in real time
    async with emulated(EmulatorOptions(api_key=KEY, rtf=1)) as url:
        settings = settings_for(url, openai_response_format=response_format, openai_stream_format=stream_format)
        provider = openai_from(settings)
        try:
            started = time.perf_counter()
            async with aclosing(provider.synthesize(text, VoiceOptions("alloy"))) as chunks:
                await anext(chunks)
                assert time.perf_counter() - started < 0.5
        finally:
            await provider.aclose()


async def test_tts1_gets_neither_sse_nor_instructions() -> None:
    """The emulator refuses both for tts-1, as the service does: the provider must not send them."""
    run = await stream(
        EmulatorOptions(api_key=KEY),
        openai_model="tts-1",
        openai_stream_format="sse",
        openai_instructions="Speak calmly.",
    )
    assert run.events() == [("segment", 0), ("segment_end", 0), ("segment", 1), ("segment_end", 1)]
    assert_audio_matches(run)
    body = run.requests[0]["json"]
    assert body["model"] == "tts-1" and "stream_format" not in body and "instructions" not in body


async def test_instructions_voice_speed_and_a_relay_base_url_with_v1() -> None:
    run = await stream(
        EmulatorOptions(api_key=KEY),
        query="&voice=nova&speed=1.25",
        url_suffix="/v1/",  # relays document their base with /v1
        openai_instructions="Speak calmly.",
    )
    assert_audio_matches(run, speed=1.25)
    body = run.requests[0]["json"]
    assert (body["voice"], body["speed"], body["instructions"]) == ("nova", 1.25, "Speak calmly.")


async def test_the_configured_voice_is_the_default_and_all_voices_are_listed() -> None:
    settings = settings_for("http://127.0.0.1:9", openai_voice="coral")
    provider = openai_from(settings)
    try:
        voices = [v.id for v in provider.voices]
        assert voices[0] == "coral" and len(voices) == 11 and set(voices) >= {"alloy", "verse", "ballad"}
        assert {(v.sample_rate, v.language) for v in provider.voices} == {(RATE, "en")}
        assert provider.max_chars == 4096
    finally:
        await provider.aclose()


# -- faults ------------------------------------------------------------------------------------


async def test_429_once_is_retried_and_the_audio_comes_once() -> None:
    options = EmulatorOptions(api_key=KEY, fault=Fault.RATE_LIMITED, fault_times=1, retry_after_s=0.05)
    run = await stream(options, "Hello there my friend.")
    assert run.events() == [("segment", 0), ("segment_end", 0)]
    assert_audio_matches(run)
    assert len(run.requests) == 2


async def test_429_every_time_is_rate_limited_after_the_retries() -> None:
    options = EmulatorOptions(api_key=KEY, fault=Fault.RATE_LIMITED, retry_after_s=0.05)
    run = await stream(options, "Hello there my friend.")
    assert run.events() == [("segment", 0), ("segment_end", 0), ("error", 0)]
    assert run.message("error")["code"] == "provider_rate_limited"
    assert len(run.requests) == 2  # http_retries=1


async def test_500_is_retried_then_falls_back_to_tone() -> None:
    options = EmulatorOptions(api_key=KEY, fault=Fault.SERVER_ERROR)
    run = await stream(options, "Hello there my friend.", fallback=("tone",), http_retries=2)
    assert run.events() == [("segment", 0), ("segment_end", 0), ("warning", 0)]
    warning = run.message("warning")
    assert warning["code"] == "provider_fallback" and "(500)" in warning["message"]
    assert_audio_matches(run)  # tone speaks 80 ms a word too
    assert len(run.requests) == 3


async def test_500_without_fallback_is_unavailable() -> None:
    run = await stream(EmulatorOptions(api_key=KEY, fault=Fault.SERVER_ERROR), "Hello there my friend.")
    assert run.events() == [("segment", 0), ("segment_end", 0), ("error", 0)]
    assert run.message("error")["code"] == "provider_unavailable"
    assert len(run.requests) == 2


@pytest.mark.parametrize("fault", [Fault.UNAUTHORIZED, None])
async def test_refused_credentials_are_not_retried(fault: Fault | None) -> None:
    options = EmulatorOptions(api_key=KEY if fault else "another-key", fault=fault or Fault.NONE)
    run = await stream(options, "Hello there my friend.")
    assert run.events() == [("segment", 0), ("segment_end", 0), ("error", 0)]
    error = run.message("error")
    assert error["code"] == "provider_auth" and "401" in error["message"]
    assert len(run.requests) == 1
    assert not run.transcript.frames()


async def test_401_falls_back() -> None:
    options = EmulatorOptions(api_key=KEY, fault=Fault.UNAUTHORIZED)
    run = await stream(options, "Hello there my friend.", fallback=("tone",))
    assert run.events() == [("segment", 0), ("segment_end", 0), ("warning", 0)]
    assert run.message("warning")["code"] == "provider_fallback"
    assert_audio_matches(run)


async def test_a_stall_spends_the_first_audio_budget_once() -> None:
    # --openai-timeout-s is one budget for the segment's first audio, retries included: a stalled
    # upstream is not asked again (that would double the silence), the segment ends in provider_timeout.
    options = EmulatorOptions(api_key=KEY, fault=Fault.STALL)
    run = await stream(options, "Hello there my friend.", openai_timeout_s=0.3)
    assert run.events() == [("segment", 0), ("segment_end", 0), ("error", 0)]
    assert run.message("error")["code"] == "provider_timeout"
    assert "within 0.3 s" in run.message("error")["message"]
    assert len(run.requests) == 1


async def test_a_stall_hands_the_segment_to_the_fallback_when_the_budget_is_spent() -> None:
    options = EmulatorOptions(api_key=KEY, fault=Fault.STALL, fault_times=1)
    run = await stream(options, "Hello there my friend. And now?", fallback=("tone",), openai_timeout_s=0.3)
    assert run.events() == [("segment", 0), ("segment_end", 0), ("warning", 0), ("segment", 1), ("segment_end", 1)]
    assert run.message("warning")["code"] == "provider_fallback"
    assert "openai sent no audio within 0.3 s" in run.message("warning")["message"]
    assert len(run.requests) == 2  # the stalled one, then the next segment's, answered


async def test_a_fast_failure_is_retried_within_the_budget() -> None:
    options = EmulatorOptions(api_key=KEY, fault=Fault.SERVER_ERROR, fault_times=1)
    run = await stream(options, "Hello there my friend.", openai_timeout_s=2.0)
    assert run.events() == [("segment", 0), ("segment_end", 0)]
    assert_audio_matches(run)
    assert len(run.requests) == 2


@pytest.mark.parametrize("stream_format", ["audio", "sse"])
async def test_a_cutoff_after_audio_ends_the_segment_without_repeating_it(stream_format: str) -> None:
    options = EmulatorOptions(api_key=KEY, fault=Fault.CUTOFF, fault_times=1, rtf=20, chunk_ms=40)
    text = "One two three four five six seven eight. Nine ten."
    run = await stream(options, text, fallback=("tone",), openai_stream_format=stream_format)
    # No retry and no fallback once audio went out: either would say part of it twice.
    assert run.events() == [("segment", 0), ("segment_end", 0), ("error", 0), ("segment", 1), ("segment_end", 1)]
    assert run.message("error")["code"] == "provider_unavailable"
    assert len(run.requests) == 2
    audio = run.segment_audio()
    first = audio["One two three four five six seven eight."]
    # Half the audio (the emulator cuts at half its bytes), then nothing.
    half_ms = expected_ms("One two three four five six seven eight.") / 2
    assert abs(1000 * len(first) / RATE - half_ms) <= 2 * FRAME_MS + 40
    want = speech("One two three four five six seven eight.", RATE).astype(np.float32) / 32768
    # Its start, not a repeat (past the server's 5 ms fade-in).
    np.testing.assert_allclose(first[RATE // 100 : RATE // 10], want[RATE // 100 : RATE // 10], atol=2e-3)
    assert abs(1000 * len(audio["Nine ten."]) / RATE - expected_ms("Nine ten.")) <= 2 * FRAME_MS


@pytest.mark.parametrize("stream_format", ["audio", "sse"])
async def test_a_200_without_audio_is_a_bad_response(stream_format: str) -> None:
    options = EmulatorOptions(api_key=KEY, fault=Fault.NO_AUDIO)
    run = await stream(options, "Hello there my friend.", openai_stream_format=stream_format)
    assert run.events() == [("segment", 0), ("segment_end", 0), ("error", 0)]
    assert run.message("error")["code"] == "provider_bad_response"
    assert len(run.requests) == 1


async def test_a_relays_200_with_an_error_body_falls_back() -> None:
    options = EmulatorOptions(api_key=KEY, fault=Fault.OTHER)
    run = await stream(options, "Hello there my friend.", fallback=("tone",))
    assert run.events() == [("segment", 0), ("segment_end", 0), ("warning", 0)]
    warning = run.message("warning")
    assert warning["code"] == "provider_fallback" and "without audio (bad_gateway)" in warning["message"]
    assert_audio_matches(run)
    assert len(run.requests) == 1


async def test_a_model_the_upstream_does_not_have_is_rejected() -> None:
    run = await stream(EmulatorOptions(api_key=KEY), "Hello there my friend.", openai_model="tts-2")
    assert run.events() == [("segment", 0), ("segment_end", 0), ("error", 0)]
    error = run.message("error")
    assert error["code"] == "provider_rejected" and "404" in error["message"]
    assert len(run.requests) == 1


# -- SSE details the emulator does not produce (a relay's clean end without speech.audio.done) ---


def sse_transport(events: list[str]) -> httpx.MockTransport:
    body = "".join(f"data: {event}\n\n" for event in events).encode()
    return httpx.MockTransport(
        lambda request: httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)
    )


def sse_provider(events: list[str]) -> OpenAIProvider:
    settings = HttpSettings(base_url="http://upstream.invalid", api_key=KEY, model="gpt-4o-mini-tts", max_retries=0)
    return OpenAIProvider(settings, stream_format="sse", transport=sse_transport(events))


DELTA = '{"type":"speech.audio.delta","audio":"AAABAAIA"}'  # three samples: 0, 1, 2


async def test_an_sse_stream_without_its_done_event_is_cut_off() -> None:
    provider = sse_provider([DELTA, DELTA])
    got = []
    with pytest.raises(ProviderError) as caught:
        async for chunk in provider.synthesize("Hi.", VoiceOptions("alloy")):
            got.append(chunk)
    assert caught.value.code == "provider_unavailable" and "speech.audio.done" in str(caught.value)
    assert sum(len(c.samples) for c in got) == 6  # the audio before the cut went out


async def test_sse_events_after_done_and_unknown_events_are_ignored() -> None:
    done = '{"type":"speech.audio.done","usage":{"input_tokens":1,"output_tokens":2,"total_tokens":3}}'
    provider = sse_provider([DELTA, '{"type":"speech.audio.something_new"}', DELTA, done, DELTA])
    chunks = [c async for c in provider.synthesize("Hi.", VoiceOptions("alloy"))]
    assert np.concatenate([c.samples for c in chunks]).tolist() == [v / 32768 for v in (0, 1, 2, 0, 1, 2)]


async def test_an_sse_error_event_is_an_error() -> None:
    provider = sse_provider(['{"type":"error","error":{"message":"boom","code":"server_error"}}'])
    with pytest.raises(ProviderError) as caught:
        async for _ in provider.synthesize("Hi.", VoiceOptions("alloy")):
            pass
    assert caught.value.code == "provider_unavailable"


# -- rate-limit headers ------------------------------------------------------------------------


def test_openai_rate_limit_headers_are_understood() -> None:
    assert _duration_s("6m0s") == 360 and _duration_s("20ms") == 0.02 and _duration_s("1h2m3.5s") == 3723.5
    assert _duration_s("soon") is None
    exhausted = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1.5s"}
    assert _generic_rate_limit(exhausted) == {"retry-after": "1.500"}
    assert _generic_rate_limit({"retry-after-ms": "250"}) == {"retry-after": "0.250"}
    assert _generic_rate_limit({"x-ratelimit-remaining-requests": "12", "x-ratelimit-reset-requests": "1s"}) == {}


# -- secrets -----------------------------------------------------------------------------------


async def test_the_key_never_reaches_logs_clients_or_reprs(capfd: pytest.CaptureFixture[str]) -> None:
    runs = [
        await stream(EmulatorOptions(api_key=KEY), "Hello there.", log_level="debug"),
        await stream(EmulatorOptions(api_key=KEY, fault=Fault.UNAUTHORIZED), "Hello there.", log_level="debug"),
        await stream(EmulatorOptions(api_key="other"), "Hello there.", log_level="debug"),
        await stream(EmulatorOptions(api_key=KEY, fault=Fault.OTHER), "Hello there.", log_level="debug"),
    ]
    captured = capfd.readouterr()
    assert "provider.attempt_failed" in captured.out + captured.err  # the logs were captured
    assert KEY not in captured.out + captured.err
    for run in runs:
        assert KEY not in repr(run.transcript.messages()) and KEY not in repr(run.requests)
    provider = openai_from(settings_for("http://127.0.0.1:9"))
    try:
        assert KEY not in repr(provider) and KEY not in str(provider)
    finally:
        await provider.aclose()
