"""The `ttsai` provider against the TTS.ai emulator on loopback, driven through the real WebSocket."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest
from websockets.asyncio.client import connect

from loadtest.emulators.common import EmulatorOptions, Fault, encode, expected_ms, speech
from loadtest.emulators.ttsai import create_app, spoken_text
from stream_server.providers.answers import SseEvent, SseParser
from stream_server.providers.base import Provider, ProviderError, VoiceOptions
from stream_server.providers.http import HttpSettings
from stream_server.providers.tone import ToneProvider, expected_duration_ms
from stream_server.providers.ttsai import FREE_MAX_CHARS, KEYED_MAX_CHARS, TTSAIProvider, _RequestBudget
from stream_server.providers.ttsai_events import interpret
from stream_server.settings import Settings

from .conftest import run_asgi, run_server, tone_settings
from .helpers import ProviderRun, receive, receive_all, rms, send

KEY = "sk-tts-emulated-0123456789abcdefXYZ"
RATE = 24000
FRAME_MS = 20
TWO_SENTENCES = "Hello there my friend. How are you today?"
STREAM, QUEUE = "/v1/tts/stream/", "/v1/tts/"
POLL = "/v1/speech/results/"


@dataclass
class Run(ProviderRun):
    ready: dict[str, Any]

    def paths(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == path]

    def downloads(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"].startswith("/static/downloads/")]


def ttsai_from(settings: Settings, **options: Any) -> TTSAIProvider:
    """The provider as the server builds it from `settings`: its own, and the shared HTTP ones."""
    return TTSAIProvider.from_settings(settings.ttsai, settings.shared_http, **options)


def settings_for(url: str, fallback: tuple[str, ...] = (), **overrides: Any) -> Settings:
    fields: dict[str, Any] = {
        "providers": ("ttsai", "tone"),
        "provider": "ttsai",
        "fallback": fallback,
        "ttsai_base_url": url,
        "ttsai_api_key": KEY,
        "ttsai_poll_interval_s": 0.02,
        "ttsai_timeout_s": 5.0,
        "http_retries": 1,
        **overrides,
    }
    return tone_settings(**fields)


@asynccontextmanager
async def emulated(options: EmulatorOptions, **app: Any) -> AsyncIterator[str]:
    async with run_asgi(create_app(options, **app)) as url:
        yield url


async def stream(
    options: EmulatorOptions,
    text: str = TWO_SENTENCES,
    *,
    query: str = "",
    fallback: tuple[str, ...] = (),
    app: dict[str, Any] | None = None,
    **overrides: Any,
) -> Run:
    """One WebSocket stream through stream_server, whose `ttsai` provider talks to the emulator."""
    async with emulated(options, **(app or {})) as url:
        settings = settings_for(url, fallback, **overrides)
        provider = ttsai_from(settings)
        try:
            providers: dict[str, Provider] = {"ttsai": provider, "tone": ToneProvider()}
            async with run_server(settings, providers) as server, connect(server.ws_url + query) as ws:
                ready = await receive(ws)
                assert isinstance(ready, dict)
                await send(ws, type="text", text=text)
                await send(ws, type="end")
                transcript = await receive_all(ws)
        finally:
            await provider.aclose()
    return Run(transcript, options.requests, ready)


def assert_durations(run: Run, texts: list[str]) -> None:
    """Each segment's audio lasts what the emulator spoke for it (within a frame or two), and sounds."""
    audio = run.segment_audio()
    assert list(audio) == texts
    for text, samples in audio.items():
        assert abs(len(samples) * 1000 / RATE - expected_ms(spoken_text(text))) <= 2 * FRAME_MS, text
        assert rms(samples) > 0.05
    for end in run.transcript.messages("segment_end"):
        assert end["audio_ms"] > 0


# -- audio end to end ----------------------------------------------------------------------------


async def test_stream_mode_speaks_each_segment_over_sse() -> None:
    run = await stream(EmulatorOptions(api_key=KEY, rtf=20), query="?speed=1.5")
    assert run.events() == [("segment", 0), ("segment_end", 0), ("segment", 1), ("segment_end", 1)]
    assert_durations(run, ["Hello there my friend.", "How are you today?"])
    requests = run.paths(STREAM)
    assert len(requests) == len(run.requests) == 2  # no polling, no download
    first = requests[0]
    assert first["json"] == {"model": "kokoro", "text": "Hello there my friend.", "voice": "af_bella", "speed": 1.5}
    assert first["headers"]["authorization"] == "Bearer ***"  # the emulator's mask for the right key
    assert first["headers"]["accept"] == "text/event-stream"
    assert all(r["status"] == 200 for r in run.requests)


async def test_stream_mode_accepts_a_whole_wav_file_per_event() -> None:
    run = await stream(EmulatorOptions(api_key=KEY), app={"sse_audio": "wav"})
    assert run.events() == [("segment", 0), ("segment_end", 0), ("segment", 1), ("segment_end", 1)]
    assert_durations(run, ["Hello there my friend.", "How are you today?"])


async def test_queue_mode_submits_polls_and_decodes_the_mp3_as_it_downloads() -> None:
    run = await stream(EmulatorOptions(api_key=KEY, first_byte_ms=60, rtf=20), ttsai_mode="queue")
    assert run.events() == [("segment", 0), ("segment_end", 0), ("segment", 1), ("segment_end", 1)]
    assert_durations(run, ["Hello there my friend.", "How are you today?"])
    submits = run.paths(QUEUE)
    assert [r["json"] for r in submits] == [
        {"model": "kokoro", "text": "Hello there my friend.", "voice": "af_bella", "format": "mp3"},
        {"model": "kokoro", "text": "How are you today?", "voice": "af_bella", "format": "mp3"},
    ]
    assert all(r["headers"]["authorization"] == "Bearer ***" for r in submits + run.paths(POLL))
    assert len(run.paths(POLL)) >= 2 and len(run.downloads()) == 2
    assert not run.paths(STREAM)


async def test_auto_mode_queues_a_model_that_cannot_stream() -> None:
    run = await stream(
        EmulatorOptions(api_key=KEY), "Hello there my friend.", ttsai_model="piper", ttsai_voice="en_US-lessac-medium"
    )
    assert run.ready["voice"] == "en_US-lessac-medium"  # the configured voice is the default
    assert run.events() == [("segment", 0), ("segment_end", 0)]
    assert_durations(run, ["Hello there my friend."])  # piper speaks at 22.05 kHz: resampled
    assert run.paths(QUEUE)[0]["json"]["model"] == "piper" and not run.paths(STREAM)


async def test_queue_polls_at_the_configured_interval() -> None:
    interval = 0.1
    run = await stream(
        EmulatorOptions(api_key=KEY, first_byte_ms=350),
        "Hello there.",
        ttsai_mode="queue",
        ttsai_poll_interval_s=interval,
    )
    assert run.events() == [("segment", 0), ("segment_end", 0)]
    submitted = run.paths(QUEUE)[0]["t"]
    polls = [r["t"] for r in run.paths(POLL)]
    # Ready 0.35 s after the submission; a poll every 0.1 s: the 4th poll finds it (a 5th if late).
    assert 4 <= len(polls) <= 5, polls
    gaps = np.diff([submitted, *polls])
    assert gaps.min() >= interval * 0.9, gaps


async def test_say_as_markup_reaches_the_service_unsplit() -> None:
    phone = '<say-as interpret-as="telephone">+1. 555. 867. 5309 ext. 42</say-as>'
    text = f"Please call {phone} now. Thanks a lot."
    run = await stream(EmulatorOptions(api_key=KEY), text)
    first = f"Please call {phone} now."
    assert [r["json"]["text"] for r in run.paths(STREAM)] == [first, "Thanks a lot."]
    assert_durations(run, [first, "Thanks a lot."])


# -- plans, limits, voices -------------------------------------------------------------------------


async def test_anonymous_requests_carry_no_key_and_stay_within_the_free_500_characters() -> None:
    words = " ".join(f"word{i}" for i in range(120))  # about 800 characters, no sentence end
    run = await stream(
        EmulatorOptions(api_key=KEY), words + ".", ttsai_api_key=None, max_segment_chars=2000, app={"rate_limit": 100}
    )
    assert run.ready["max_segment_chars"] == FREE_MAX_CHARS
    texts = [r["json"]["text"] for r in run.paths(STREAM)]
    assert len(texts) == 2 and all(len(t) <= FREE_MAX_CHARS for t in texts)
    assert all("authorization" not in r["headers"] for r in run.requests)
    assert [m["type"] for m in run.transcript.messages() if m["type"] == "error"] == []
    assert run.requests[0]["status"] == 200


async def test_the_emulator_refuses_anonymous_text_over_500_characters() -> None:
    async with emulated(EmulatorOptions(api_key=KEY)) as url, httpx.AsyncClient(base_url=url) as client:
        body = {"model": "kokoro", "voice": "af_bella", "text": "a" * 501}
        refused = await client.post("/v1/tts/", json=body)
        assert refused.status_code == 400 and "500" in refused.json()["error"]
        assert refused.headers["x-ratelimit-limit"] == "10"  # the free plan's requests per minute
        keyed = await client.post("/v1/tts/", json=body, headers={"Authorization": f"Bearer {KEY}"})
        assert keyed.status_code == 200 and keyed.json()["status"] == "queued"
        assert keyed.headers["x-ratelimit-limit"] == "60"  # Pro
        wrong = await client.post("/v1/tts/", json=body, headers={"Authorization": "Bearer sk-tts-wrong"})
        assert wrong.status_code == 401 and "error" in wrong.json()
        voices = (await client.get("/v1/voices/", params={"model": "kokoro"})).json()
        assert "af_bella" in [v["id"] for v in voices["voices"]]


async def test_the_emulator_holds_the_free_plan_to_two_concurrent_streams() -> None:
    body = {"model": "kokoro", "voice": "af_bella", "text": "Hello."}
    emulator = emulated(EmulatorOptions(api_key=KEY, fault=Fault.STALL))
    async with emulator as url, httpx.AsyncClient(base_url=url) as client:
        first = client.stream("POST", "/v1/tts/stream/", json=body)
        second = client.stream("POST", "/v1/tts/stream/", json=body)
        async with first, second:  # two anonymous streams, stalled, still open
            third = await client.post("/v1/tts/stream/", json=body)
        assert third.status_code == 429 and "concurrent" in third.json()["error"]


async def test_limits_voices_and_mode_follow_the_docs() -> None:
    providers = [
        ttsai_from(settings_for("http://127.0.0.1:9/v1/")),
        ttsai_from(settings_for("http://127.0.0.1:9", ttsai_api_key=None)),
        ttsai_from(settings_for("http://127.0.0.1:9"), max_chars=50000),
        ttsai_from(settings_for("http://127.0.0.1:9", ttsai_mode="queue")),
        ttsai_from(settings_for("http://127.0.0.1:9", ttsai_model="piper")),
    ]
    try:
        keyed, _, _, queued, piper = providers
        assert [p.max_chars for p in providers[:3]] == [KEYED_MAX_CHARS, FREE_MAX_CHARS, 50000]
        assert keyed.settings.base_url == "http://127.0.0.1:9"  # a base given with /v1/ works too
        assert [(v.id, v.sample_rate, v.language) for v in keyed.voices] == [("af_bella", 24000, "en")]
        assert [p.streams for p in (keyed, queued, piper)] == [True, False, False]
    finally:
        for provider in providers:
            await provider.aclose()


async def test_a_voice_the_service_does_not_know_is_rejected_once() -> None:
    run = await stream(EmulatorOptions(api_key=KEY), "Hello there.", ttsai_voice="zz_nobody")
    error = run.message("error")
    assert error["code"] == "provider_rejected" and "400" in error["message"] and "zz_nobody" in error["message"]
    assert len(run.requests) == 1


# -- rate limits -----------------------------------------------------------------------------------


async def test_the_provider_waits_for_the_rate_limit_window_instead_of_being_refused() -> None:
    text = "One two. Three four. Five six. Seven eight. Nine ten."
    started = time.monotonic()
    run = await stream(EmulatorOptions(api_key=KEY), text, app={"rate_limit": 3, "window_s": 0.5}, ttsai_concurrency=2)
    elapsed = time.monotonic() - started
    assert [m["type"] for m in run.transcript.messages()].count("segment_end") == 5
    assert not run.transcript.messages("error") and not run.transcript.messages("warning")
    assert [r["status"] for r in run.requests] == [200] * 5  # never a 429
    assert_durations(run, ["One two.", "Three four.", "Five six.", "Seven eight.", "Nine ten."])
    assert elapsed >= 0.5  # requests 4 and 5 waited for the second window


async def test_polls_also_wait_for_the_rate_limit_window() -> None:
    run = await stream(
        EmulatorOptions(api_key=KEY, first_byte_ms=150), "One two. Three four.",
        app={"rate_limit": 3, "window_s": 0.3}, ttsai_mode="queue",
    )  # fmt: skip
    assert [m["type"] for m in run.transcript.messages()].count("segment_end") == 2
    assert not run.transcript.messages("error")
    api = [r for r in run.requests if r["path"].startswith("/v1/")]
    assert len(api) > 3 and all(r["status"] == 200 for r in api)  # several windows, no 429


def test_the_request_budget_counts_requests_in_flight() -> None:
    now = [0.0]
    budget = _RequestBudget(clock=lambda: now[0])
    assert budget.take() == 0.0  # nothing known yet
    budget.update({"x-ratelimit-remaining": "2", "x-ratelimit-reset": "1.0"})
    assert budget.take() == 0.0 and budget.take() == 0.0  # two requests start before any answer
    budget.update({"x-ratelimit-remaining": "1", "x-ratelimit-reset": "0.9"})  # the first's answer
    assert budget.take() == pytest.approx(0.9)  # the second already took that last one
    now[0] = 1.0
    assert budget.take() == 0.0  # a new window


# -- faults ----------------------------------------------------------------------------------------

MODES: dict[str, dict[str, Any]] = {"stream": {}, "queue": {"ttsai_mode": "queue"}}
ONE = "Hello there my friend."
CDN = "https://cdn.tts.test/files/output.wav"


def submissions(run: Run) -> list[dict[str, Any]]:
    return run.paths(STREAM) + run.paths(QUEUE)


@pytest.mark.parametrize("mode", MODES)
async def test_a_429_once_is_retried_and_the_audio_comes_once(mode: str) -> None:
    run = await stream(EmulatorOptions(api_key=KEY, fault=Fault.RATE_LIMITED, fault_times=1), ONE, **MODES[mode])
    assert run.events() == [("segment", 0), ("segment_end", 0)]
    assert_durations(run, [ONE])
    assert [r["status"] for r in submissions(run)] == [429, 200]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("fault", "code", "attempts"),
    [
        (Fault.SERVER_ERROR, "provider_unavailable", 2),  # retried http_retries (1) times
        (Fault.UNAUTHORIZED, "provider_auth", 1),  # a configuration problem: never retried
        (Fault.STALL, "provider_timeout", 1),  # the stall spent the whole first-audio budget
        (Fault.OTHER, "provider_bad_response", 2),  # an error event / a failed job: retried
        (Fault.NO_AUDIO, "provider_bad_response", 1),
    ],
)
async def test_a_fault_before_audio_is_an_error_or_goes_to_the_fallback(
    mode: str, fault: Fault, code: str, attempts: int
) -> None:
    options: dict[str, Any] = {**MODES[mode], "ttsai_timeout_s": 0.4}
    run = await stream(EmulatorOptions(api_key=KEY, fault=fault), ONE, **options)
    assert run.events() == [("segment", 0), ("segment_end", 0), ("error", 0)]
    assert run.message("error")["code"] == code
    assert run.message("segment_end")["audio_ms"] == 0
    assert len(submissions(run)) == attempts

    fell_back = await stream(EmulatorOptions(api_key=KEY, fault=fault), ONE, fallback=("tone",), **options)
    assert fell_back.events() == [("segment", 0), ("segment_end", 0), ("warning", 0)]
    warning = fell_back.message("warning")
    assert warning["code"] == "provider_fallback" and "tone" in warning["message"]
    assert abs(fell_back.message("segment_end")["audio_ms"] - expected_duration_ms(ONE)) < 3


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fault", [Fault.OTHER, Fault.SERVER_ERROR])
async def test_a_transient_fault_once_is_retried(mode: str, fault: Fault) -> None:
    options: dict[str, Any] = {**MODES[mode], "ttsai_timeout_s": 0.4}
    run = await stream(EmulatorOptions(api_key=KEY, fault=fault, fault_times=1), ONE, **options)
    assert run.events() == [("segment", 0), ("segment_end", 0)]
    assert_durations(run, [ONE])
    assert len(submissions(run)) == 2


@pytest.mark.parametrize("mode", MODES)
async def test_a_cutoff_after_audio_ends_the_segment_without_repeating_it(mode: str) -> None:
    run = await stream(EmulatorOptions(api_key=KEY, fault=Fault.CUTOFF, rtf=20), ONE, fallback=("tone",), **MODES[mode])
    # Audio already went out: no retry and no fallback, which would say it twice.
    assert run.events() == [("segment", 0), ("segment_end", 0), ("error", 0)]
    assert run.message("error")["code"] == "provider_unavailable"
    heard = run.message("segment_end")["audio_ms"]
    assert 0 < heard < expected_ms(ONE) * 0.75
    assert len(submissions(run)) == 1 and not run.transcript.messages("warning")


async def test_a_failed_poll_polls_again_and_the_key_stays_off_other_hosts() -> None:
    """A 503 on a poll does not resubmit the job; a result_url on another host gets no key."""
    seen: list[tuple[str, str | None]] = []
    polls = iter([httpx.Response(503), httpx.Response(200, json={"status": "completed", "result_url": CDN})])

    def upstream(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, request.headers.get("authorization")))
        if request.url.path == "/v1/tts/":
            return httpx.Response(200, json={"uuid": "u1", "job_id": "j1", "status": "queued"})
        if request.url.path == "/v1/speech/results/":
            return next(polls)
        return httpx.Response(200, content=encode(speech(ONE, RATE), RATE, "wav", "pcm_s16le"))

    http = HttpSettings(base_url="https://api.tts.test/v1/", api_key=KEY, model="kokoro", voice="af_bella")
    provider = TTSAIProvider(http, mode="queue", poll_interval_s=0.01, transport=httpx.MockTransport(upstream))
    try:
        chunks = [chunk async for chunk in provider.synthesize(ONE, VoiceOptions("af_bella"))]
    finally:
        await provider.aclose()
    assert sum(c.duration_ms for c in chunks) == pytest.approx(expected_ms(ONE))
    assert seen == [
        ("/v1/tts/", f"Bearer {KEY}"),
        ("/v1/speech/results/", f"Bearer {KEY}"),
        ("/v1/speech/results/", f"Bearer {KEY}"),
        ("/files/output.wav", None),
    ]


async def test_a_failed_job_is_reported_with_the_services_reason() -> None:
    run = await stream(EmulatorOptions(api_key=KEY, fault=Fault.OTHER), ONE, ttsai_mode="queue", http_retries=0)
    assert "failed the job (Generation failed)" in run.message("error")["message"]


# -- the event stream's unconfirmed format -----------------------------------------------------------


def events_of(raw: str) -> list[SseEvent]:
    parser = SseParser()
    found = [event for line in raw.split("\n") if (event := parser.line(line)) is not None]
    return found + ([last] if (last := parser.end()) else [])


def test_sse_framing() -> None:
    raw = ': keep-alive\nevent: audio\ndata: {"a":\ndata: 1}\nid: 7\n\ndata: [DONE]'
    assert events_of(raw) == [SseEvent("audio", '{"a":\n1}'), SseEvent("message", "[DONE]")]


def test_audio_events_are_read_tolerantly() -> None:
    pcm = np.arange(8, dtype="<i2").tobytes()
    b64 = base64.b64encode(pcm).decode()
    for body in (
        f'{{"audio": "{b64}"}}',
        f'{{"chunk": 3, "data": "{b64}", "sample_rate": 22050, "format": "pcm"}}',
        f'{{"audio_base64": "{b64}", "mime_type": "audio/L16;rate=16000"}}',
        f'{{"audio": "data:audio/wav;base64,{b64}"}}',
    ):
        piece = interpret(SseEvent("message", body), "ttsai")
        assert piece is not None and piece.data == pcm, body
    labelled = interpret(SseEvent("message", f'{{"chunk": 1, "data": "{b64}", "sample_rate": 22050}}'), "ttsai")
    assert labelled is not None and labelled.rate == 22050 and labelled.fmt is None
    for end in ("[DONE]", '{"type": "done"}', '{"done": true}', '{"type": "speech.audio.done", "usage": {}}'):
        assert interpret(SseEvent("message", end), "ttsai") is None, end
    assert interpret(SseEvent("done", ""), "ttsai") is None
    progress = interpret(SseEvent("message", '{"status": "processing"}'), "ttsai")
    assert progress is not None and progress.data == b""


@pytest.mark.parametrize(
    "event",
    [
        SseEvent("error", '{"error": "GPU busy"}'),
        SseEvent("message", '{"error": {"message": "GPU busy"}}'),
        SseEvent("message", '{"type": "error", "message": "GPU busy"}'),
        SseEvent("message", '{"status": "failed", "error": "GPU busy"}'),
    ],
)
def test_error_events_are_provider_errors(event: SseEvent) -> None:
    with pytest.raises(ProviderError) as raised:
        interpret(event, "ttsai")
    assert raised.value.code == "provider_bad_response" and "GPU busy" in str(raised.value)


@pytest.mark.parametrize("data", ['{"surprise": 1}', "[1, 2]", "not json", '{"audio": "***"}'])
def test_anything_else_is_a_bad_response(data: str) -> None:
    with pytest.raises(ProviderError) as raised:
        interpret(SseEvent("message", data), "ttsai")
    assert raised.value.code == "provider_bad_response"


# -- secrets -----------------------------------------------------------------------------------


async def test_the_key_never_reaches_logs_clients_or_reprs(capfd: pytest.CaptureFixture[str]) -> None:
    runs = [
        await stream(EmulatorOptions(api_key=KEY), "Hello there.", log_level="debug"),
        await stream(EmulatorOptions(api_key=KEY), "Hello there.", log_level="debug", ttsai_mode="queue"),
        await stream(EmulatorOptions(api_key=KEY, fault=Fault.UNAUTHORIZED), "Hello there.", log_level="debug"),
        await stream(EmulatorOptions(api_key="sk-tts-other"), "Hello there.", log_level="debug"),
        await stream(EmulatorOptions(api_key=KEY, fault=Fault.SERVER_ERROR), "Hello there.", log_level="debug"),
    ]
    captured = capfd.readouterr()
    assert "provider.attempt_failed" in captured.out + captured.err  # the logs were captured
    assert KEY not in captured.out + captured.err
    for run in runs:
        assert KEY not in repr(run.transcript.items) and KEY not in repr(run.requests)
    provider = ttsai_from(settings_for("http://127.0.0.1:9"))
    try:
        assert KEY not in repr(provider) and KEY not in str(provider)
    finally:
        await provider.aclose()
