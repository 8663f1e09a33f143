"""A TTS.ai REST API emulator: queue-and-poll and SSE streaming, plan limits, faults on demand.

    python -m loadtest.emulators ttsai --port 9003 [--first-byte-ms 300] [--fault stall]

What it checks, as the docs describe the service: an optional `Authorization: Bearer sk-tts-…`
(no header: the anonymous free tier; a wrong key: 401), the plan's requests per window (then 429)
and its concurrent streams, the plan's text length (free: 500 characters), the model, the voice
(per model), `format`, `speed` (0.5-2.0). Every /v1/ response carries `X-RateLimit-Limit`,
`X-RateLimit-Remaining` and `X-RateLimit-Reset` (seconds to the reset: the unit is not
documented; clients accept a Unix time too).

- `POST /v1/tts/` → `{"uuid", "job_id", "status": "queued", "credits_used", "credits_remaining"}`;
  `GET /v1/speech/results/?uuid=` → `processing` until `first_byte_ms` after the submission, then
  `completed` with a `result_url` on this emulator (`/static/downloads/<uuid>/output.<format>`,
  so downloads stay on loopback), or `failed` with an `error`.
- `POST /v1/tts/stream/` (kokoro, melotts) → `text/event-stream`. The real events are not
  documented; this one sends `data: {"chunk": i, "audio": "<base64>", "format": "pcm",
  "sample_rate": 24000}` per `chunk_ms` of s16le audio (`sse_audio="wav"`: each piece a whole
  WAV file instead), then `data: {"type": "done", "chunks": n}`.

Faults: 429/500/401 answer the submission (or the stream request) itself. Streaming: stall = the
headers, then nothing; cutoff = half the events, then the connection drops; other = an `error`
event; noaudio = only the end event. Queue: stall = a job that never completes; cutoff = half the
file, then the connection drops; other = a `failed` job; noaudio = a completed job whose file is
empty. Error bodies are `{"error": "..."}` (the one error field the docs show, on failed jobs).
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import re
import struct
import time
import uuid as uuidlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .common import EmulatorOptions, Fault, encode, paced, speech


@dataclass(frozen=True)
class Plan:
    requests_per_window: int  # the docs: per minute
    concurrent: int
    max_chars: int


# The docs' plan table. Starter and Pro list "1,000,000" characters, but the `text` field says at
# most 5,000 for Pro and 50,000 for Enterprise: the field's numbers are used.
PLANS = {
    "free": Plan(10, 2, 500),
    "starter": Plan(30, 3, 5000),
    "pro": Plan(60, 5, 5000),
    "enterprise": Plan(300, 20, 50000),
}


@dataclass(frozen=True)
class Model:
    tier: Literal["free", "standard", "premium"]
    streams: bool
    rate: int
    voices: tuple[str, ...]
    languages: tuple[str, ...] = ("en",)


# af_bella is the docs' voice; the others are the models' own published voice names.
MODELS = {
    "kokoro": Model("standard", True, 24000, ("af_bella", "af_sarah", "am_adam", "bf_emma"), ("en", "ja", "fr", "zh")),
    "melotts": Model("free", True, 44100, ("EN-US", "EN-BR", "EN-AU")),
    "piper": Model("free", False, 22050, ("en_US-lessac-medium", "en_US-amy-medium")),
}
CREDITS_PER_1K = {"free": 1, "standard": 2, "premium": 4}
# format -> (Content-Type, PyAV container, codec)
FORMATS = {
    "mp3": ("audio/mpeg", "mp3", "libmp3lame"),
    "wav": ("audio/wav", "wav", "pcm_s16le"),
    "flac": ("audio/flac", "flac", "flac"),
    "ogg": ("audio/ogg", "ogg", "libopus"),
}
FIELDS = {"model", "text", "voice", "format", "speed", "language", "instructions", "pronunciations", "stream"}
START_CREDITS = 15000
_TAG = re.compile(r"<[^>]*>")


def spoken_text(text: str) -> str:
    """What the service says for `text`: SSML tags (`<say-as …>`) are read, not spoken."""
    return _TAG.sub(" ", text)


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}

    def response(self, headers: dict[str, str]) -> Response:
        return JSONResponse({"error": str(self)}, status_code=self.status, headers={**headers, **self.headers})


@dataclass
class Job:
    uuid: str
    job_id: str
    text: str
    model: str
    format: str
    fault: Fault
    ready_at: float


@dataclass
class _Call:
    """One accepted API request, as the endpoint handlers see it."""

    request: Request
    body: Any
    who: str  # the account: "key", or the anonymous caller's IP
    plan: Plan
    fault: Fault
    headers: dict[str, str]  # the rate-limit headers for the answer


Handler = Callable[["_State", _Call], Awaitable[Response]]


@dataclass
class _Window:
    start: float = 0.0
    used: int = 0


@dataclass
class _State:
    options: EmulatorOptions
    plan: Plan
    limit: int
    window_s: float
    sse_audio: Literal["pcm", "wav"]
    jobs: dict[str, Job] = field(default_factory=dict)
    windows: dict[str, _Window] = field(default_factory=dict)
    streaming: dict[str, int] = field(default_factory=dict)
    credits: dict[str, int] = field(default_factory=dict)

    # -- who is asking, and may they -------------------------------------------------------------

    def identity(self, request: Request, fault: Fault = Fault.NONE) -> tuple[str, Plan]:
        """The key's account, or the anonymous free tier (per IP); 401 for a wrong key."""
        auth = request.headers.get("authorization")
        if fault is Fault.UNAUTHORIZED or (auth is not None and auth != f"Bearer {self.options.api_key}"):
            raise ApiError(401, "Invalid API key. Get one from your account settings.")
        if auth is None:
            return f"ip:{request.client.host if request.client else '?'}", PLANS["free"]
        return "key", self.plan

    def window(self, who: str, plan: Plan) -> tuple[_Window, int]:
        limit = self.limit if plan is self.plan else plan.requests_per_window
        window = self.windows.setdefault(who, _Window(time.monotonic()))
        if time.monotonic() >= window.start + self.window_s:
            window.start, window.used = time.monotonic(), 0
        return window, limit

    def headers(self, who: str, plan: Plan) -> dict[str, str]:
        window, limit = self.window(who, plan)
        reset = max(0.0, window.start + self.window_s - time.monotonic())
        return {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(max(0, limit - window.used)),
            "X-RateLimit-Reset": f"{reset:.3f}",
        }

    def count(self, who: str, plan: Plan) -> None:
        """One more request in the window, or 429 (refused requests are not counted)."""
        window, limit = self.window(who, plan)
        if window.used >= limit:
            wait = window.start + self.window_s - time.monotonic()
            raise ApiError(429, "Rate limit exceeded", {"Retry-After": f"{max(0.0, wait):.3f}"})
        window.used += 1


def create_app(
    options: EmulatorOptions,
    *,
    plan: str = "pro",
    rate_limit: int | None = None,
    window_s: float = 60.0,
    sse_audio: Literal["pcm", "wav"] = "pcm",
) -> Starlette:
    """`plan`: the key's plan (no key: free). `rate_limit` requests per `window_s` override the
    key's plan (tests: 3 per half second)."""
    chosen = PLANS[plan]
    state = _State(options, chosen, rate_limit or chosen.requests_per_window, window_s, sse_audio)

    async def submit(request: Request) -> Response:
        return await _api(state, request, _submit, faults=True)

    async def stream(request: Request) -> Response:
        return await _api(state, request, _stream, faults=True)

    async def results(request: Request) -> Response:
        return await _api(state, request, _results)

    async def voices(request: Request) -> Response:
        return await _api(state, request, _voices)

    async def models(request: Request) -> Response:
        return await _api(state, request, _models)

    async def health(request: Request) -> Response:
        answer = {"status": "online", "latency_ms": 1, "queue_size": len(state.jobs), "models_loaded": list(MODELS)}
        return JSONResponse(answer)

    async def download(request: Request) -> Response:
        return _download(state, request)

    return Starlette(
        routes=[
            Route("/v1/tts/", submit, methods=["POST"]),
            Route("/v1/tts/stream/", stream, methods=["POST"]),
            Route("/v1/speech/results/", results, methods=["GET"]),
            Route("/v1/voices/", voices, methods=["GET"]),
            Route("/v1/models/", models, methods=["GET"]),
            Route("/v1/health/", health, methods=["GET"]),
            Route("/static/downloads/{uuid}/output.{ext}", download, methods=["GET"]),
        ]
    )


async def _api(state: _State, request: Request, handler: Handler, *, faults: bool = False) -> Response:
    """Records the request, then auth, rate limit, the injected fault, the handler."""
    body = _json_or_none(await request.body())
    entry: dict[str, Any] = {
        "path": request.url.path,
        "query": dict(request.query_params),
        "headers": _public_headers(request, state.options),
        "json": body,
        "t": time.monotonic(),
    }
    state.options.requests.append(entry)
    fault = state.options.fault_now() if faults else Fault.NONE
    headers: dict[str, str] = {}
    try:
        who, plan = state.identity(request, fault)
        headers = state.headers(who, plan)
        state.count(who, plan)
        headers = state.headers(who, plan)
        if fault is Fault.RATE_LIMITED:
            retry = f"{state.options.retry_after_s:g}"
            exhausted = {"Retry-After": retry, "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": retry}
            raise ApiError(429, "Rate limit exceeded", exhausted)
        if fault is Fault.SERVER_ERROR:
            raise ApiError(500, "Internal server error")
        response = await handler(state, _Call(request, body, who, plan, fault, headers))
    except ApiError as error:
        response = error.response(headers)
    entry["status"] = response.status_code
    return response


# -- POST /v1/tts/ and the queue ----------------------------------------------------------------


def _validate(body: Any, plan: Plan) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "Request body must be a JSON object")
    unknown = set(body) - FIELDS
    if unknown:
        raise ApiError(400, f"Unknown parameter: {min(unknown)}")
    text, voice = body.get("text"), body.get("voice")
    model = body.get("model", "kokoro")
    if not isinstance(text, str) or not text.strip():
        raise ApiError(400, "text is required")
    if len(text) > plan.max_chars:
        raise ApiError(400, f"Text too long: at most {plan.max_chars} characters on your plan")
    if model not in MODELS:
        raise ApiError(400, f"Unknown model: {model}")
    if not isinstance(voice, str) or not voice:
        raise ApiError(400, "voice is required")
    if voice not in MODELS[model].voices:
        raise ApiError(400, f"Unknown voice '{voice}' for model {model}; see /v1/voices/")
    fmt = body.get("format", "mp3")
    if fmt not in FORMATS:
        raise ApiError(400, f"Unsupported format: {fmt}")
    speed = body.get("speed", 1.0)
    if isinstance(speed, bool) or not isinstance(speed, int | float) or not 0.5 <= speed <= 2.0:
        raise ApiError(400, "speed must be between 0.5 and 2.0")
    return {"text": text, "model": model, "voice": voice, "format": fmt}


def _credits(state: _State, who: str, text: str, model: str) -> tuple[int, int]:
    used = max(1, math.ceil(len(text) * CREDITS_PER_1K[MODELS[model].tier] / 1000))
    left = state.credits.get(who, START_CREDITS) - used
    state.credits[who] = left
    return used, left


async def _submit(state: _State, call: _Call) -> Response:
    params = _validate(call.body, call.plan)
    job = Job(
        uuid=uuidlib.uuid4().hex,
        job_id=str(uuidlib.uuid4()),
        text=params["text"],
        model=params["model"],
        format=params["format"],
        fault=call.fault,
        ready_at=time.monotonic() + state.options.first_byte_ms / 1000,
    )
    state.jobs[job.uuid] = job
    used, left = _credits(state, call.who, job.text, job.model)
    answer = {
        "uuid": job.uuid,
        "job_id": job.job_id,
        "status": "queued",
        "credits_used": used,
        "credits_remaining": left,
    }
    return JSONResponse(answer, headers=call.headers)


async def _results(state: _State, call: _Call) -> Response:
    uuid = call.request.query_params.get("uuid")
    if not uuid:
        raise ApiError(400, "uuid is required")
    job = state.jobs.get(uuid)
    if job is None:
        raise ApiError(404, "Job not found")
    if _pending(job):
        return JSONResponse({"status": "processing"}, headers=call.headers)
    if job.fault is Fault.OTHER:
        return JSONResponse({"status": "failed", "error": "Generation failed"}, headers=call.headers)
    url = str(call.request.base_url).rstrip("/") + f"/static/downloads/{job.uuid}/output.{job.format}"
    return JSONResponse({"status": "completed", "result_url": url}, headers=call.headers)


def _download(state: _State, request: Request) -> Response:
    """A static file: no auth, no rate-limit headers (it is not an API endpoint)."""
    headers = _public_headers(request, state.options)
    state.options.requests.append(
        {"path": request.url.path, "query": {}, "headers": headers, "json": None, "t": time.monotonic()}
    )
    job = state.jobs.get(request.path_params["uuid"])
    if job is None or request.path_params["ext"] != job.format or _pending(job):
        return Response("Not Found", status_code=404, media_type="text/plain")
    data = b"" if job.fault is Fault.NO_AUDIO else _audio_file(job)
    duration_s = max(0.001, len(spoken_text(job.text).split()) * 0.08)
    pieces = _pieces(data, state.options, len(data) / duration_s, job.fault)
    return StreamingResponse(pieces, media_type=FORMATS[job.format][0])


def _pending(job: Job) -> bool:
    return job.fault is Fault.STALL or time.monotonic() < job.ready_at


def _audio_file(job: Job) -> bytes:
    _, container, codec = FORMATS[job.format]
    rate = 48000 if job.format == "ogg" else MODELS[job.model].rate  # Opus runs at 48 kHz only
    return encode(speech(spoken_text(job.text), rate), rate, container, codec)


async def _pieces(data: bytes, options: EmulatorOptions, bytes_per_second: float, fault: Fault) -> AsyncIterator[bytes]:
    """The file in `chunk_ms` pieces at `rtf` (its wait was the job's); cutoff drops it halfway."""
    step = max(1, int(bytes_per_second * options.chunk_ms / 1000))
    for sent in range(0, len(data), step):
        if fault is Fault.CUTOFF and sent >= len(data) // 2:
            raise ConnectionResetError("emulated cutoff")  # uvicorn aborts the connection
        yield data[sent : sent + step]
        if options.rtf > 0:
            await asyncio.sleep(options.chunk_ms / 1000 / options.rtf)


# -- POST /v1/tts/stream/ ---------------------------------------------------------------------


async def _stream(state: _State, call: _Call) -> Response:
    params = _validate(call.body, call.plan)
    model = MODELS[params["model"]]
    if not model.streams:
        raise ApiError(400, f"Model {params['model']} does not support streaming; use /v1/tts/")
    if state.streaming.get(call.who, 0) >= call.plan.concurrent:
        raise ApiError(429, "Too many concurrent requests for your plan", {"Retry-After": "1"})
    _credits(state, call.who, params["text"], params["model"])
    state.streaming[call.who] = state.streaming.get(call.who, 0) + 1
    pcm = speech(spoken_text(params["text"]), model.rate).tobytes()
    events = _events(state, call.who, pcm, model.rate, call.fault)
    headers = {**call.headers, "Cache-Control": "no-cache"}
    return StreamingResponse(events, media_type="text/event-stream", headers=headers)


async def _events(state: _State, who: str, pcm: bytes, rate: int, fault: Fault) -> AsyncIterator[bytes]:
    try:
        if fault is Fault.STALL:
            await asyncio.sleep(3600)  # headers sent, then nothing (ends when the client leaves)
        if fault is Fault.OTHER:
            await asyncio.sleep(state.options.first_byte_ms / 1000)
            yield _sse({"error": "Generation failed"}, event="error")
            return
        count = sent = 0
        if fault is not Fault.NO_AUDIO:
            async for piece in paced(pcm, state.options, rate * 2):
                if fault is Fault.CUTOFF and sent >= len(pcm) // 2:
                    raise ConnectionResetError("emulated cutoff")  # uvicorn aborts the connection
                sent += len(piece)
                audio = _wav(piece, rate) if state.sse_audio == "wav" else piece
                fields = {"format": "wav"} if state.sse_audio == "wav" else {"format": "pcm", "sample_rate": rate}
                yield _sse({"chunk": count, "audio": base64.b64encode(audio).decode(), **fields})
                count += 1
        yield _sse({"type": "done", "chunks": count})
    finally:
        state.streaming[who] -= 1


def _sse(payload: dict[str, Any], event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(payload)}\n\n".encode()


def _wav(pcm: bytes, rate: int) -> bytes:
    """A whole s16le mono WAV file around `pcm`."""
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    riff = b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVE"
    return riff + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(pcm)) + pcm


# -- catalogue ------------------------------------------------------------------------------------


async def _voices(state: _State, call: _Call) -> Response:
    query = call.request.query_params
    voices = [
        {
            "id": voice,
            "name": voice,
            "model": name,
            "language": model.languages[0],
            "preview_url": str(call.request.base_url) + f"v1/voices/preview/{voice}.mp3",
        }
        for name, model in MODELS.items()
        if query.get("model") in (None, name) and query.get("language") in (None, model.languages[0])
        for voice in model.voices
    ]
    return JSONResponse({"voices": voices, "total": len(voices)}, headers=call.headers)


async def _models(state: _State, call: _Call) -> Response:
    models = [
        {
            "id": name,
            "name": name.capitalize(),
            "type": "tts",
            "tier": model.tier,
            "languages": list(model.languages),
            "supports_cloning": False,
            "supports_streaming": model.streams,
            "credits_per_1k_chars": CREDITS_PER_1K[model.tier],
        }
        for name, model in MODELS.items()
    ]
    return JSONResponse({"models": models}, headers=call.headers)


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _public_headers(request: Request, options: EmulatorOptions) -> dict[str, str]:
    """The request's headers for tests, the key masked (a test checks it was the right one)."""
    headers = dict(request.headers)
    auth = headers.get("authorization")
    if auth is not None:
        headers["authorization"] = "Bearer ***" if auth == f"Bearer {options.api_key}" else "Bearer <wrong>"
    return headers
