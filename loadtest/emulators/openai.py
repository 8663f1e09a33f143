"""An OpenAI `/v1/audio/speech` emulator: the real wire format, deterministic audio, faults on demand.

    python -m loadtest.emulators openai --port 9001 [--fault 429 --fault-times 1]

It checks what the real service checks (Bearer key, model, input length, voice, speed, the options
tts-1 refuses), answers errors with OpenAI's error JSON, sends OpenAI's rate-limit headers, and
streams `speech(text)` as chunked audio in the requested `response_format`, or as SSE
`speech.audio.delta` events with `stream_format: "sse"`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .common import EmulatorOptions, Fault, encode, paced, speech

SAMPLE_RATE = 24000
MAX_INPUT_CHARS = 4096
MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")
TTS1_MODELS = ("tts-1", "tts-1-hd")
VOICES = ("alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse")
FIELDS = {"model", "input", "voice", "response_format", "speed", "instructions", "stream_format"}
RATE_LIMIT_REQUESTS = 500

# response_format -> (Content-Type, PyAV container, codec); pcm is sent as it is.
FORMATS: dict[str, tuple[str, str, str]] = {
    "pcm": ("audio/pcm", "", ""),
    "mp3": ("audio/mpeg", "mp3", "libmp3lame"),
    "opus": ("audio/opus", "ogg", "libopus"),
    "aac": ("audio/aac", "adts", "aac"),
    "flac": ("audio/flac", "flac", "flac"),
    "wav": ("audio/wav", "wav", "pcm_s16le"),
}


class ApiError(Exception):
    """An OpenAI-style error answer."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": type_, "param": param, "code": code}}


def create_app(options: EmulatorOptions) -> Starlette:
    requested = 0

    async def speech_endpoint(request: Request) -> Response:
        nonlocal requested
        requested += 1
        raw = await request.body()
        body = _json_or_none(raw)
        options.requests.append({"path": request.url.path, "headers": _public_headers(request, options), "json": body})
        headers = _rate_limit_headers(requested)
        try:
            fault = options.fault_now()
            _check_key(request, options, fault)
            _check_rate_fault(fault, options)
            params = _validate(body)
        except ApiError as error:
            extra = _refused_headers(options) if error.status == 429 else {}
            return JSONResponse(error.body, status_code=error.status, headers={**headers, **extra})
        return _answer(params, fault, options, headers)

    return Starlette(routes=[Route("/v1/audio/speech", speech_endpoint, methods=["POST"])])


# -- checks --------------------------------------------------------------------------------------


def _check_key(request: Request, options: EmulatorOptions, fault: Fault) -> None:
    auth = request.headers.get("authorization", "")
    if fault is Fault.UNAUTHORIZED or auth != f"Bearer {options.api_key}":
        # The real message quotes a masked key; the emulator quotes none.
        message = "Incorrect API key provided." if auth else "You didn't provide an API key."
        raise ApiError(401, message, code="invalid_api_key")


def _check_rate_fault(fault: Fault, options: EmulatorOptions) -> None:
    if fault is Fault.RATE_LIMITED:
        raise ApiError(
            429,
            "Rate limit reached for requests. Please try again later.",
            type_="requests",
            code="rate_limit_exceeded",
        )
    if fault is Fault.SERVER_ERROR:
        raise ApiError(500, "The server had an error while processing your request.", type_="server_error")


def _validate(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "We could not parse the JSON body of your request.")
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise ApiError(400, f"Unrecognized request argument supplied: {unknown[0]}", param=unknown[0])
    model = body.get("model")
    if not isinstance(model, str):
        raise ApiError(400, "you must provide a model parameter", param="model")
    if model not in MODELS:
        raise ApiError(
            404, f"The model `{model}` does not exist or you do not have access to it.", code="model_not_found"
        )
    text = body.get("input")
    if not isinstance(text, str) or not text:
        raise ApiError(400, "Invalid 'input': string too short.", param="input", code="string_too_short")
    if len(text) > MAX_INPUT_CHARS:
        raise ApiError(
            400,
            f"Invalid 'input': string too long (maximum {MAX_INPUT_CHARS}).",
            param="input",
            code="string_above_max_length",
        )
    voice = body.get("voice")
    voice_id = voice.get("id") if isinstance(voice, dict) else voice
    if voice_id not in VOICES:
        raise ApiError(
            400,
            f"Invalid value: {voice_id!r}. Supported values are: {', '.join(VOICES)}.",
            param="voice",
            code="invalid_value",
        )
    fmt = body.get("response_format", "mp3")
    if fmt not in FORMATS:
        raise ApiError(400, f"Invalid value: {fmt!r}.", param="response_format", code="invalid_value")
    speed = body.get("speed", 1.0)
    if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not 0.25 <= speed <= 4.0:
        raise ApiError(400, "Invalid 'speed': must be between 0.25 and 4.0.", param="speed", code="invalid_value")
    if "instructions" in body and model in TTS1_MODELS:
        raise ApiError(400, f"instructions are not supported for {model}.", param="instructions")
    stream_format = body.get("stream_format", "audio")
    if stream_format not in ("audio", "sse"):
        raise ApiError(400, f"Invalid value: {stream_format!r}.", param="stream_format", code="invalid_value")
    if stream_format == "sse" and model in TTS1_MODELS:
        raise ApiError(400, f"stream_format 'sse' is not supported for {model}.", param="stream_format")
    return {"text": text, "format": fmt, "speed": float(speed), "sse": stream_format == "sse"}


# -- answers -------------------------------------------------------------------------------------


def _answer(params: dict[str, Any], fault: Fault, options: EmulatorOptions, headers: dict[str, str]) -> Response:
    if fault is Fault.OTHER:
        # What some relays do: a 200 whose body is an error, not audio.
        error = {"error": {"message": "upstream error", "type": "upstream_error", "param": None, "code": "bad_gateway"}}
        return JSONResponse(error, headers=headers)
    data = b"" if fault is Fault.NO_AUDIO else _audio(params["text"], params["format"], params["speed"])
    # Pacing in real time: the byte rate that makes `data` last as long as its audio.
    duration_s = max(len(params["text"].split()) * 0.08 / params["speed"], 0.001)
    bytes_per_second = max(1.0, len(data) / duration_s)
    content_type = FORMATS[params["format"]][0]
    if params["sse"]:
        body = _sse_body(data, fault, options, bytes_per_second, params["text"])
        return StreamingResponse(body, media_type="text/event-stream", headers=headers)
    if params["format"] == "pcm":
        bytes_per_second = _odd_pieces(bytes_per_second, options.chunk_ms)
    body = _audio_body(data, fault, options, bytes_per_second)
    return StreamingResponse(body, media_type=content_type, headers=headers)


def _odd_pieces(bytes_per_second: float, chunk_ms: int) -> float:
    """A rate that makes `paced` cut pcm into pieces of an odd byte count: the real service does
    not cut its chunks at sample boundaries, and clients must cope."""
    step = int(bytes_per_second * chunk_ms / 1000) | 1
    return (step + 0.5) * 1000 / chunk_ms


def _audio(text: str, fmt: str, speed: float) -> bytes:
    # Faster speech: the same beeps rendered for a lower rate and played at 24 kHz, so the audio
    # lasts 1/speed as long.
    pcm = speech(text, round(SAMPLE_RATE / speed))
    if fmt == "pcm":
        return pcm.astype("<i2").tobytes()
    _, container, codec = FORMATS[fmt]
    return encode(pcm, SAMPLE_RATE, container, codec)


async def _audio_body(data: bytes, fault: Fault, options: EmulatorOptions, bps: float) -> AsyncIterator[bytes]:
    async for piece in _faulty(paced(data, options, bps), fault, len(data)):
        yield piece


async def _sse_body(data: bytes, fault: Fault, options: EmulatorOptions, bps: float, text: str) -> AsyncIterator[bytes]:
    async for piece in _faulty(paced(data, options, bps), fault, len(data)):
        delta = {"type": "speech.audio.delta", "audio": base64.b64encode(piece).decode()}
        yield _event(delta)
    words = len(text.split())
    usage = {"input_tokens": words, "output_tokens": words * 2, "total_tokens": words * 3}
    yield _event({"type": "speech.audio.done", "usage": usage})


async def _faulty(pieces: AsyncIterator[bytes], fault: Fault, total: int) -> AsyncIterator[bytes]:
    """The pieces, or: nothing ever (stall), or half of them and a dropped connection (cutoff)."""
    if fault is Fault.STALL:
        await _forever()
    sent = 0
    async for piece in pieces:
        if fault is Fault.CUTOFF and sent >= total // 2:
            # Raised inside the body: uvicorn drops the connection without the final chunk.
            raise ConnectionAbortedError("emulated cutoff")
        yield piece
        sent += len(piece)


async def _forever() -> None:
    await asyncio.Event().wait()  # cancelled when the client goes away


def _event(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


# -- headers and records -------------------------------------------------------------------------


def _rate_limit_headers(requested: int) -> dict[str, str]:
    return {
        "x-ratelimit-limit-requests": str(RATE_LIMIT_REQUESTS),
        "x-ratelimit-remaining-requests": str(max(1, RATE_LIMIT_REQUESTS - requested)),
        "x-ratelimit-reset-requests": "120ms",
        "openai-processing-ms": "1",
    }


def _refused_headers(options: EmulatorOptions) -> dict[str, str]:
    wait = options.retry_after_s
    return {
        "retry-after": f"{wait:g}",
        "retry-after-ms": str(math.ceil(wait * 1000)),
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": f"{wait:g}s",
    }


def _public_headers(request: Request, options: EmulatorOptions) -> dict[str, str]:
    """The request's headers for tests, with the key replaced by whether it was the right one."""
    headers = dict(request.headers)
    if "authorization" in headers:
        right = headers["authorization"] == f"Bearer {options.api_key}"
        headers["authorization"] = "Bearer <right key>" if right else "<wrong key>"
    return headers


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None
