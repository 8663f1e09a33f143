"""The `gemini` provider against the Gemini emulator on loopback, driven through the real WebSocket."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest
from websockets.asyncio.client import connect

from loadtest.emulators.common import EmulatorOptions, Fault, expected_ms, speech
from loadtest.emulators.gemini import create_app, spoken_words
from stream_server.providers.base import ProviderError, VoiceOptions
from stream_server.providers.gemini import GeminiConfig, GeminiProvider, build_body, resolve_auth
from stream_server.providers.http import HttpSettings
from stream_server.providers.tone import ToneProvider
from stream_server.settings import Settings

from .conftest import run_asgi, run_server, tone_settings
from .helpers import ProviderRun, receive, receive_all, rms, send

KEY = "AIzaSy-emulated-0123456789abcdefXYZ"
RATE = 24000
FRAME_MS = 20
SENTENCE = "Hello there my friend."
TWO_SENTENCES = "Hello there my friend. How are you today?"
ONE_SEGMENT = [("segment", 0), ("segment_end", 0)]
TWO_SEGMENTS = [("segment", 0), ("segment_end", 0), ("segment", 1), ("segment_end", 1)]


@dataclass
class Run(ProviderRun):
    def audio_ms(self) -> list[float]:
        return [m["audio_ms"] for m in self.transcript.messages("segment_end")]


def gemini_from(settings: Settings, **options: Any) -> GeminiProvider:
    """The provider as the server builds it from `settings`: its own, and the shared HTTP ones."""
    return GeminiProvider.from_settings(settings.gemini, settings.shared_http, **options)


def settings_for(url: str, fallback: tuple[str, ...] = (), **overrides: Any) -> Settings:
    fields: dict[str, Any] = {
        "providers": ("gemini", "tone"),
        "provider": "gemini",
        "fallback": fallback,
        "gemini_base_url": url,
        "gemini_api_key": KEY,
        "gemini_timeout_s": 5.0,
        "http_retries": 1,
        **overrides,
    }
    return tone_settings(**fields)


@asynccontextmanager
async def provider_for(url: str, **overrides: Any) -> AsyncIterator[GeminiProvider]:
    provider = gemini_from(settings_for(url, **overrides))
    try:
        yield provider
    finally:
        await provider.aclose()


async def stream(
    options: EmulatorOptions,
    text: str = TWO_SENTENCES,
    *,
    query: str = "",
    fallback: tuple[str, ...] = (),
    emulator: dict[str, Any] | None = None,
    **overrides: Any,
) -> Run:
    """One WebSocket stream through stream_server, whose `gemini` provider talks to the emulator."""
    async with run_asgi(create_app(options, **(emulator or {}))) as url:
        settings = settings_for(url, fallback, **overrides)
        async with (
            provider_for(url, **overrides) as provider,
            run_server(settings, {"gemini": provider, "tone": ToneProvider()}) as server,
            connect(f"{server.ws_url}?format=pcm&sample_rate={RATE}{query}") as ws,
        ):
            ready = await receive(ws)
            assert isinstance(ready, dict) and ready["type"] == "ready", ready
            await send(ws, type="text", text=text)
            await send(ws, type="end")
            transcript = await receive_all(ws)
            transcript.items.insert(0, ready)
    return Run(transcript, options.requests)


def assert_audio_matches(run: Run, tolerance_ms: float = 2 * FRAME_MS, speakers: tuple[str, ...] = ()) -> None:
    """Every segment's audio lasts what the emulator speaks for it (80 ms a word), and is not silent."""
    segments = run.segment_audio()
    assert segments, "no audio"
    for text, samples in segments.items():
        duration = 1000 * len(samples) / RATE
        assert abs(duration - expected_ms(spoken_words(text, speakers))) <= tolerance_ms, (text, duration)
        assert rms(samples) > 0.05, f"silent audio for {text!r}"


# -- audio end to end and the request ------------------------------------------------------------


async def test_streaming_sends_each_segment_as_sse_and_its_audio_arrives() -> None:
    run = await stream(EmulatorOptions(api_key=KEY, rtf=20))
    assert run.events() == TWO_SEGMENTS
    assert_audio_matches(run)
    assert [r["json"]["contents"][0]["parts"][0]["text"] for r in run.requests] == [
        "Hello there my friend.", "How are you today?"
    ]  # fmt: skip
    request = run.requests[0]
    assert request["path"] == "/v1beta/models/gemini-2.5-flash-preview-tts:streamGenerateContent"
    assert request["query"] == {"alt": "sse"}
    # A loopback base is not Google's host: auto picks the relays' bearer token.
    assert request["auth"] == "bearer" and request["headers"]["authorization"] == "Bearer <right key>"
    assert "x-goog-api-key" not in request["headers"]
    assert request["json"] == {
        "contents": [{"role": "user", "parts": [{"text": "Hello there my friend."}]}],
        "generationConfig": {
            "responseModalities": ["AUDIO"],
            "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}}},
        },
    }


async def test_pcm_pieces_are_the_upstreams_audio_sample_for_sample() -> None:
    """Pieces of 7 ms are 336 bytes, but the emulator's base64 pieces end anywhere: nothing may shift."""
    options = EmulatorOptions(api_key=KEY, chunk_ms=7)
    async with run_asgi(create_app(options)) as url, provider_for(url) as provider:
        chunks = [c async for c in provider.synthesize("One two three four.", VoiceOptions("Kore"))]
    assert len(chunks) > 1 and {c.sample_rate for c in chunks} == {RATE}
    got = np.concatenate([c.samples for c in chunks])
    np.testing.assert_allclose(got, speech("One two three four.", RATE).astype(np.float32) / 32768, atol=1e-6)


async def test_generate_content_when_not_streaming() -> None:
    run = await stream(EmulatorOptions(api_key=KEY), gemini_streaming=False)
    assert run.events() == TWO_SEGMENTS
    assert_audio_matches(run)
    assert {r["path"] for r in run.requests} == {"/v1beta/models/gemini-2.5-flash-preview-tts:generateContent"}
    assert all(r["query"] == {} for r in run.requests)


@pytest.mark.parametrize("streaming", [True, False])
async def test_snake_case_body_for_vertex_style_relays(streaming: bool) -> None:
    # The emulator refuses camelCase here, and answers in snake_case (inline_data, mime_type...).
    run = await stream(
        EmulatorOptions(api_key=KEY),
        emulator={"body_style": "snake"},
        gemini_body_style="snake",
        gemini_streaming=streaming,
        gemini_language_code="en-US",
        gemini_temperature=1.5,
    )
    assert run.events() == TWO_SEGMENTS
    assert_audio_matches(run)
    assert run.requests[0]["json"] == {
        "contents": [{"role": "user", "parts": [{"text": "Hello there my friend."}]}],
        "generation_config": {
            "response_modalities": ["AUDIO"],
            "temperature": 1.5,
            "speech_config": {
                "voice_config": {"prebuilt_voice_config": {"voice_name": "Kore"}},
                "language_code": "en-US",
            },
        },
    }


async def test_a_strict_snake_case_relay_refuses_camel_case() -> None:
    run = await stream(EmulatorOptions(api_key=KEY), SENTENCE, emulator={"body_style": "snake"})
    assert run.events() == [*ONE_SEGMENT, ("error", 0)]
    error = run.message("error")
    assert error["code"] == "provider_rejected" and 'Unknown name "generationConfig"' in error["message"]
    assert len(run.requests) == 1


async def test_goog_auth_sends_x_goog_api_key_only() -> None:
    run = await stream(EmulatorOptions(api_key=KEY), SENTENCE, emulator={"auth": "goog"}, gemini_auth="goog")
    assert run.events() == ONE_SEGMENT
    assert_audio_matches(run)
    request = run.requests[0]
    assert request["auth"] == "goog" and request["headers"]["x-goog-api-key"] == "<right key>"
    assert "authorization" not in request["headers"]


async def test_bearer_auth_against_a_relay_that_takes_only_bearer() -> None:
    run = await stream(EmulatorOptions(api_key=KEY), SENTENCE, emulator={"auth": "bearer"}, gemini_auth="bearer")
    assert run.events() == ONE_SEGMENT
    assert run.requests[0]["headers"]["authorization"] == "Bearer <right key>"
    # The wrong header for this relay: its 401, not retried.
    run = await stream(EmulatorOptions(api_key=KEY), SENTENCE, emulator={"auth": "bearer"}, gemini_auth="goog")
    assert run.events() == [*ONE_SEGMENT, ("error", 0)]
    assert run.message("error")["code"] == "provider_auth" and len(run.requests) == 1


def test_auto_auth_follows_the_host() -> None:
    assert resolve_auth("auto", "https://generativelanguage.googleapis.com") == "goog"
    assert resolve_auth("auto", "https://aiplatform.googleapis.com/") == "goog"
    assert resolve_auth("auto", "https://api.tokenhot.ai") == "bearer"
    assert resolve_auth("auto", "https://googleapis.com.evil.example") == "bearer"
    assert resolve_auth("bearer", "https://generativelanguage.googleapis.com") == "bearer"


async def test_a_wrong_key_is_googles_400_api_key_invalid_and_an_auth_error() -> None:
    run = await stream(EmulatorOptions(api_key="another-key"), SENTENCE, gemini_auth="goog")
    assert run.events() == [*ONE_SEGMENT, ("error", 0)]
    error = run.message("error")
    assert error["code"] == "provider_auth" and "API_KEY_INVALID" in error["message"]
    assert len(run.requests) == 1 and run.requests[0]["headers"]["x-goog-api-key"] == "<wrong key>"


async def test_style_prompt_temperature_and_language_code() -> None:
    run = await stream(
        EmulatorOptions(api_key=KEY),
        gemini_style="Say cheerfully",
        gemini_temperature=0.7,
        gemini_language_code="en-US",
    )
    assert run.events() == TWO_SEGMENTS
    assert_audio_matches(run)  # the emulator does not speak the prompt, as the service does not
    body = run.requests[1]["json"]
    assert body["contents"][0]["parts"][0]["text"] == "Say cheerfully: How are you today?"
    assert body["generationConfig"]["temperature"] == 0.7
    assert body["generationConfig"]["speechConfig"]["languageCode"] == "en-US"
    assert run.message("ready")["language"] == "en-US"


async def test_two_speakers_replace_the_voice_config() -> None:
    text = "Joe: How is it going today? Jane: Not too bad, how about you?"
    speakers = ("Joe", "Jane")
    run = await stream(EmulatorOptions(api_key=KEY), text, gemini_speakers=("Joe=Kore", "Jane=puck"))
    assert run.events() == TWO_SEGMENTS
    assert_audio_matches(run, speakers=speakers)
    speech_config = run.requests[0]["json"]["generationConfig"]["speechConfig"]
    assert speech_config == {
        "multiSpeakerVoiceConfig": {
            "speakerVoiceConfigs": [
                {"speaker": "Joe", "voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}}},
                {"speaker": "Jane", "voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Puck"}}},
            ]
        }
    }


def test_bad_speakers_and_voices_stop_the_server_at_start_up() -> None:
    with pytest.raises(ValueError, match="gemini_speakers"):
        gemini_from(settings_for("http://127.0.0.1:9", gemini_speakers=("Joe=Kore", "Jane=Nobody")))
    with pytest.raises(ValueError, match="gemini_speakers"):
        gemini_from(settings_for("http://127.0.0.1:9", gemini_speakers=("Joe=Kore", "Joe=Puck")))
    with pytest.raises(ValueError, match="gemini_voice"):
        gemini_from(settings_for("http://127.0.0.1:9", gemini_voice="Nobody"))
    with pytest.raises(ValueError, match="gemini_api_key"):
        gemini_from(settings_for("http://127.0.0.1:9", gemini_api_key=None))


async def test_voices_are_the_canonical_names_with_the_configured_one_first() -> None:
    async with provider_for("http://127.0.0.1:9", gemini_voice="zephyr") as provider:
        voices = [v.id for v in provider.voices]
        assert voices[0] == "Zephyr" and len(voices) == 30 == len(set(voices))
        assert {"Kore", "Puck", "Zubenelgenubi"} <= set(voices)
        assert {(v.sample_rate, v.language) for v in provider.voices} == {(RATE, "en")}
        assert provider.max_bytes == 8000 and provider.max_chars is None
    run = await stream(EmulatorOptions(api_key=KEY), SENTENCE, query="&voice=Puck", gemini_voice="zephyr")
    assert run.message("ready")["voice"] == "Puck"
    assert run.requests[0]["json"]["generationConfig"]["speechConfig"]["voiceConfig"] == {
        "prebuiltVoiceConfig": {"voiceName": "Puck"}
    }


async def test_any_spelling_of_a_voice_reaches_gemini_as_its_canonical_name() -> None:
    # The session checks voice ids exactly (clients use the names in /v1/voices); the provider
    # itself takes any case, as Gemini does.
    options = EmulatorOptions(api_key=KEY)
    async with run_asgi(create_app(options)) as url, provider_for(url) as provider:
        chunks = [c async for c in provider.synthesize(SENTENCE, VoiceOptions("pUCK"))]
        assert sum(len(c.samples) for c in chunks) == RATE * expected_ms(SENTENCE) / 1000
        with pytest.raises(ProviderError) as caught:
            [c async for c in provider.synthesize(SENTENCE, VoiceOptions("Nobody"))]
    assert caught.value.code == "provider_rejected"
    assert options.requests[0]["json"]["generationConfig"]["speechConfig"]["voiceConfig"] == {
        "prebuiltVoiceConfig": {"voiceName": "Puck"}
    }
    assert len(options.requests) == 1


@pytest.mark.parametrize("streaming", [True, False])
async def test_mp3_audio_as_relay_a_sends_it(streaming: bool) -> None:
    run = await stream(EmulatorOptions(api_key=KEY, rtf=20), emulator={"audio": "mp3"}, gemini_streaming=streaming)
    assert run.events() == TWO_SEGMENTS
    assert_audio_matches(run)


async def test_the_8000_byte_limit_less_the_style_prompt_cuts_segments() -> None:
    # Georgian letters are 3 bytes: 150 words of 20 letters are 3150 characters (one segment for
    # the character limit) but 9150 bytes (two for the byte limit).
    word = "ქართულიანბანიმშვენიე"
    text = " ".join([word] * 150)
    style = "Say the following in a calm and curious way"
    options = EmulatorOptions(api_key=KEY)
    run = await stream(options, text, query="&language=ka", max_segment_chars=4000, gemini_style=style)
    assert run.events() == TWO_SEGMENTS  # the emulator refuses more than 8000 bytes with a 400
    sent = [r["json"]["contents"][0]["parts"][0]["text"] for r in run.requests]
    assert all(len(t.encode()) <= 8000 for t in sent) and all(t.startswith(style + ": ") for t in sent)
    assert sum(len(t.split()) for t in sent) == 150 + 2 * len(style.split())
    async with run_asgi(create_app(EmulatorOptions(api_key=KEY))) as url:
        async with provider_for(url, gemini_style=style) as provider:
            assert provider.max_bytes == 8000 - len(style) - 2
        body = build_body("x" * 8001, "Kore", GeminiConfig())
        async with httpx.AsyncClient(base_url=url, headers={"x-goog-api-key": KEY}) as client:
            response = await client.post("/v1beta/models/gemini-2.5-flash-preview-tts:generateContent", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"


# -- faults ------------------------------------------------------------------------------------


async def test_429_once_is_retried_and_the_audio_comes_once() -> None:
    options = EmulatorOptions(api_key=KEY, fault=Fault.RATE_LIMITED, fault_times=1, retry_after_s=0.05)
    run = await stream(options, SENTENCE)
    assert run.events() == ONE_SEGMENT
    assert_audio_matches(run)
    assert len(run.requests) == 2


async def test_429_every_time_is_rate_limited_after_the_retries() -> None:
    options = EmulatorOptions(api_key=KEY, fault=Fault.RATE_LIMITED, retry_after_s=0.05)
    run = await stream(options, SENTENCE)
    assert run.events() == [*ONE_SEGMENT, ("error", 0)]
    assert run.message("error")["code"] == "provider_rate_limited"
    assert len(run.requests) == 2  # http_retries=1


async def test_googles_retry_info_without_retry_after_is_heeded() -> None:
    error = {"error": {"code": 429, "message": "Quota exceeded.", "status": "RESOURCE_EXHAUSTED", "details": [
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "3s"}]}}  # fmt: skip
    transport = httpx.MockTransport(lambda request: httpx.Response(429, json=error))
    settings = HttpSettings(
        base_url="http://upstream.invalid", api_key=KEY, model="gemini-2.5-flash-preview-tts", max_retries=0
    )
    provider = GeminiProvider(settings, transport=transport)
    try:
        with pytest.raises(ProviderError) as caught:
            [c async for c in provider.synthesize(SENTENCE, VoiceOptions("Kore"))]
    finally:
        await provider.aclose()
    assert caught.value.code == "provider_rate_limited" and caught.value.retry_after == 3.0


@pytest.mark.parametrize("streaming", [True, False])
async def test_500_is_retried_then_falls_back_to_tone(streaming: bool) -> None:
    options = EmulatorOptions(api_key=KEY, fault=Fault.SERVER_ERROR)
    run = await stream(options, SENTENCE, fallback=("tone",), http_retries=2, gemini_streaming=streaming)
    assert run.events() == [*ONE_SEGMENT, ("warning", 0)]
    warning = run.message("warning")
    assert warning["code"] == "provider_fallback" and "(500)" in warning["message"]
    assert_audio_matches(run)  # tone speaks 80 ms a word too
    assert len(run.requests) == 3


async def test_500_without_fallback_is_unavailable() -> None:
    run = await stream(EmulatorOptions(api_key=KEY, fault=Fault.SERVER_ERROR), SENTENCE)
    assert run.events() == [*ONE_SEGMENT, ("error", 0)]
    assert run.message("error")["code"] == "provider_unavailable"
    assert len(run.requests) == 2
    assert not run.transcript.frames()


async def test_401_is_an_auth_error_not_retried_or_falls_back() -> None:
    run = await stream(EmulatorOptions(api_key=KEY, fault=Fault.UNAUTHORIZED), SENTENCE)
    assert run.events() == [*ONE_SEGMENT, ("error", 0)]
    error = run.message("error")
    assert error["code"] == "provider_auth" and "401" in error["message"]
    assert len(run.requests) == 1 and not run.transcript.frames()
    run = await stream(EmulatorOptions(api_key=KEY, fault=Fault.UNAUTHORIZED), SENTENCE, fallback=("tone",))
    assert run.events() == [*ONE_SEGMENT, ("warning", 0)]
    assert run.message("warning")["code"] == "provider_fallback"
    assert_audio_matches(run)


@pytest.mark.parametrize("streaming", [True, False])
async def test_a_stall_times_out(streaming: bool) -> None:
    options = EmulatorOptions(api_key=KEY, fault=Fault.STALL)
    run = await stream(options, SENTENCE, gemini_timeout_s=0.3, http_retries=0, gemini_streaming=streaming)
    assert run.events() == [*ONE_SEGMENT, ("error", 0)]
    assert run.message("error")["code"] == "provider_timeout"
    assert len(run.requests) == 1


async def test_a_stall_spends_the_budget_retries_included() -> None:
    # --gemini-timeout-s covers every attempt: a stall is not retried (it would double the silence).
    options = EmulatorOptions(api_key=KEY, fault=Fault.STALL, fault_times=1)
    run = await stream(options, SENTENCE, gemini_timeout_s=0.3)
    assert run.events() == [*ONE_SEGMENT, ("error", 0)]
    assert run.message("error")["code"] == "provider_timeout"
    assert len(run.requests) == 1


EIGHT = "One two three four five six seven eight."


def assert_first_half_only(run: Run) -> None:
    """Segment 0 has the first half of its audio (the emulator stops at half), said once."""
    audio = run.segment_audio()
    first = audio[EIGHT]
    assert abs(1000 * len(first) / RATE - expected_ms(EIGHT) / 2) <= 2 * FRAME_MS
    want = speech(EIGHT, RATE).astype(np.float32) / 32768
    # Its start, not a repeat (past the server's 5 ms fade-in).
    np.testing.assert_allclose(first[RATE // 100 : RATE // 10], want[RATE // 100 : RATE // 10], atol=2e-3)
    assert abs(1000 * len(audio["Nine ten."]) / RATE - expected_ms("Nine ten.")) <= 2 * FRAME_MS


async def test_a_cutoff_after_audio_ends_the_segment_without_repeating_it() -> None:
    options = EmulatorOptions(api_key=KEY, fault=Fault.CUTOFF, fault_times=1, rtf=20)
    run = await stream(options, f"{EIGHT} Nine ten.", fallback=("tone",))
    # No retry and no fallback once audio went out: either would say part of it twice.
    assert run.events() == [*ONE_SEGMENT, ("error", 0), ("segment", 1), ("segment_end", 1)]
    assert run.message("error")["code"] == "provider_unavailable"
    assert len(run.requests) == 2
    assert_first_half_only(run)


async def test_a_cutoff_of_generate_content_is_before_audio_and_retried() -> None:
    options = EmulatorOptions(api_key=KEY, fault=Fault.CUTOFF, fault_times=1)
    run = await stream(options, SENTENCE, gemini_streaming=False)
    assert run.events() == ONE_SEGMENT
    assert_audio_matches(run)
    assert len(run.requests) == 2


async def test_finish_reason_other_mid_stream_is_an_error_after_the_audio() -> None:
    options = EmulatorOptions(api_key=KEY, fault=Fault.OTHER, fault_times=1, rtf=20)
    run = await stream(options, f"{EIGHT} Nine ten.", fallback=("tone",))
    assert run.events() == [*ONE_SEGMENT, ("error", 0), ("segment", 1), ("segment_end", 1)]
    error = run.message("error")
    assert error["code"] == "provider_bad_response" and "OTHER" in error["message"]
    assert len(run.requests) == 2
    assert_first_half_only(run)


@pytest.mark.parametrize("streaming", [True, False])
async def test_finish_reason_other_before_audio_is_an_error(streaming: bool) -> None:
    # chunk_ms 1000: the SSE answer's half is no audio at all, then OTHER.
    options = EmulatorOptions(api_key=KEY, fault=Fault.OTHER, chunk_ms=1000)
    run = await stream(options, SENTENCE, gemini_streaming=streaming)
    assert run.events() == [*ONE_SEGMENT, ("error", 0)]
    error = run.message("error")
    assert error["code"] == "provider_bad_response" and "without audio (finishReason OTHER)" in error["message"]
    assert len(run.requests) == 2  # retried once, as a transient failure
    assert not run.transcript.frames()


@pytest.mark.parametrize("streaming", [True, False])
async def test_finish_reason_other_before_audio_falls_back(streaming: bool) -> None:
    options = EmulatorOptions(api_key=KEY, fault=Fault.OTHER, chunk_ms=1000)
    run = await stream(options, SENTENCE, fallback=("tone",), gemini_streaming=streaming)
    assert run.events() == [*ONE_SEGMENT, ("warning", 0)]
    warning = run.message("warning")
    assert warning["code"] == "provider_fallback" and "OTHER" in warning["message"]
    assert_audio_matches(run)


@pytest.mark.parametrize("streaming", [True, False])
async def test_a_200_without_audio_is_a_bad_response_never_silence(streaming: bool) -> None:
    run = await stream(EmulatorOptions(api_key=KEY, fault=Fault.NO_AUDIO), SENTENCE, gemini_streaming=streaming)
    assert run.events() == [*ONE_SEGMENT, ("error", 0)]
    assert run.message("error")["code"] == "provider_bad_response"
    assert len(run.requests) == 2 and not run.transcript.frames()
    # Once only: the retry gets the audio.
    options = EmulatorOptions(api_key=KEY, fault=Fault.NO_AUDIO, fault_times=1)
    run = await stream(options, SENTENCE, gemini_streaming=streaming)
    assert run.events() == ONE_SEGMENT
    assert_audio_matches(run)
    assert len(run.requests) == 2


# -- answers the emulator does not produce ---------------------------------------------------------


def sse_provider(events: list[str]) -> GeminiProvider:
    body = "".join(f"data: {event}\r\n\r\n" for event in events).encode()
    transport = httpx.MockTransport(
        lambda request: httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)
    )
    settings = HttpSettings(
        base_url="http://upstream.invalid", api_key=KEY, model="gemini-2.5-flash-preview-tts", max_retries=0
    )
    return GeminiProvider(settings, transport=transport)


def piece(data: str = "AAABAAIA", finish: str | None = None, mime: str = "audio/L16;codec=pcm;rate=24000") -> str:
    candidate: dict[str, Any] = {"content": {"parts": [{"inlineData": {"mimeType": mime, "data": data}}]}}
    if finish:
        candidate["finishReason"] = finish
    return json.dumps({"candidates": [candidate]})


async def collect(provider: GeminiProvider) -> tuple[list[float], ProviderError | None]:
    samples: list[float] = []
    try:
        async for chunk in provider.synthesize(SENTENCE, VoiceOptions("Kore")):
            samples += chunk.samples.tolist()
    except ProviderError as exc:
        return samples, exc
    finally:
        await provider.aclose()
    return samples, None


async def test_an_sse_stream_without_a_finish_reason_is_cut_off() -> None:
    samples, error = await collect(sse_provider([piece(), piece()]))
    assert error is not None and error.code == "provider_unavailable" and "cut off" in str(error)
    assert len(samples) == 6  # the audio before the cut went out


async def test_the_mime_type_is_read_from_every_piece() -> None:
    # Three samples at 24 kHz, then the same bytes said to be 16 kHz: both decoded as they say.
    events = [piece(), piece(mime="audio/L16;codec=pcm;rate=16000", finish="STOP")]
    provider = sse_provider(events)
    chunks = [c async for c in provider.synthesize(SENTENCE, VoiceOptions("Kore"))]
    await provider.aclose()
    assert [(len(c.samples), c.sample_rate) for c in chunks] == [(3, 24000), (3, 16000)]
    samples, error = await collect(sse_provider([piece(mime="audio/L16;codec=pcm", finish="STOP")]))
    assert error is not None and error.code == "provider_bad_response" and not samples  # no rate: not guessed


async def test_a_refusal_and_an_error_event_are_errors() -> None:
    _, error = await collect(sse_provider(['{"candidates":[{"finishReason":"SAFETY"}]}']))
    assert error is not None and error.code == "provider_rejected" and "SAFETY" in str(error)
    _, error = await collect(sse_provider(['{"error":{"code":503,"message":"overloaded","status":"UNAVAILABLE"}}']))
    assert error is not None and error.code == "provider_unavailable"


# -- secrets -----------------------------------------------------------------------------------


async def test_the_key_never_reaches_logs_clients_or_reprs(capfd: pytest.CaptureFixture[str]) -> None:
    runs = [
        await stream(EmulatorOptions(api_key=KEY), "Hello there.", log_level="debug"),
        await stream(EmulatorOptions(api_key=KEY, fault=Fault.UNAUTHORIZED), "Hello there.", log_level="debug"),
        await stream(EmulatorOptions(api_key="other"), "Hello there.", log_level="debug", gemini_auth="goog"),
        await stream(EmulatorOptions(api_key=KEY, fault=Fault.OTHER), "Hello there.", log_level="debug"),
        await stream(EmulatorOptions(api_key=KEY, fault=Fault.CUTOFF), "Hello there.", log_level="debug"),
    ]
    captured = capfd.readouterr()
    assert "provider.attempt_failed" in captured.out + captured.err  # the logs were captured
    assert KEY not in captured.out + captured.err
    for run in runs:
        assert KEY not in repr(run.transcript.messages()) and KEY not in repr(run.requests)
    async with provider_for("http://127.0.0.1:9") as provider:
        assert KEY not in repr(provider) and KEY not in str(provider) and KEY not in repr(provider.config)
