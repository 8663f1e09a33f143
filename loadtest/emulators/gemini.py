"""A Gemini TTS emulator speaking the real wire format, for tests and load tests on loopback.

    POST /v1beta/models/{model}:generateContent                 one JSON answer
    POST /v1beta/models/{model}:streamGenerateContent?alt=sse   Server-Sent Events, one piece each

Checked as Google does: the key (`x-goog-api-key`, or `Authorization: Bearer` as relays take it),
a TTS model, the body (camelCase, or snake_case as Vertex-style relays spell it; Google's own
JSON parser takes both), `responseModalities: ["AUDIO"]`, prebuilt voice names (case-insensitive),
the two speakers of multi-speaker mode (never with `voiceConfig` too) and the 8000-byte text limit.
Errors are Google's JSON: `{"error": {"code", "message", "status"}}`.

The audio is `common.speech()` of the words that would be spoken: a style prompt before the first
colon ("Say cheerfully: ..."), inline tags (`[sigh]`) and speaker labels ("Joe:") are not. It is sent
as `audio/L16;codec=pcm;rate=24000` base64 pieces (Google), or as `audio/mp3` (relay A).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .common import EmulatorOptions, Fault, encode, paced, speech

RATE = 24000
MAX_TEXT_BYTES = 8000
L16_MIME = f"audio/L16;codec=pcm;rate={RATE}"
MP3_MIME = "audio/mp3"
VOICES = {
    name.lower(): name
    for name in (
        "Achernar", "Achird", "Algenib", "Algieba", "Alnilam", "Aoede", "Autonoe", "Callirrhoe", "Charon",
        "Despina", "Enceladus", "Erinome", "Fenrir", "Gacrux", "Iapetus", "Kore", "Laomedeia", "Leda", "Orus",
        "Pulcherrima", "Puck", "Rasalgethi", "Sadachbia", "Sadaltager", "Schedar", "Sulafat", "Umbriel",
        "Vindemiatrix", "Zephyr", "Zubenelgenubi",
    )
}  # fmt: skip
SECRET_HEADERS = frozenset({"authorization", "x-goog-api-key"})
TOKENS_PER_SECOND = 25  # candidatesTokenCount per second of audio, as Google counts

AuthMode = Literal["any", "goog", "bearer"]
BodyStyle = Literal["any", "camel", "snake"]
AudioKind = Literal["l16", "mp3"]

_MODEL = re.compile(r"^gemini-[a-z0-9.\-]*tts$")
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
_STYLE_PROMPT = re.compile(r"^\s*(?:say|speak|read|narrate|whisper|tts)\b[^:\n]{0,300}:\s+", re.IGNORECASE)
_TAG = re.compile(r"\[[^\]\n]{1,40}\]")
_HUMP = re.compile(r"(?<=[a-z0-9])([A-Z])")


class Refused(Exception):
    """A request Google would answer with an error: becomes its JSON error response."""

    def __init__(self, code: int, status: str, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.code, self.status, self.message, self.details = code, status, message, details


@dataclass(frozen=True)
class Synthesis:
    """A valid request: what to say, and how the answer is spelled."""

    model: str
    streaming: bool
    text: str
    speakers: tuple[str, ...]
    snake: bool


def create_app(
    options: EmulatorOptions,
    *,
    auth: AuthMode = "any",
    body_style: BodyStyle = "any",
    audio: AudioKind = "l16",
) -> Starlette:
    """`auth`: which header carries the key (any: either); `body_style`: the spelling accepted
    (any: both, like Google); `audio`: L16 24 kHz pieces, or MP3 as relay A sends."""

    async def models(request: Request) -> Response:
        raw = await request.body()
        options.requests.append(_record(request, raw, options.api_key))
        try:
            _check_auth(request, options.api_key, auth)
            fault = options.fault_now()
            if early := _early_fault(fault, options):
                return early
            synthesis = _parse(request, raw, body_style)
        except Refused as refused:
            return _error(refused)
        if synthesis.streaming:
            return _sse(synthesis, fault, options, audio)
        return await _whole(synthesis, fault, options, audio)

    return Starlette(routes=[Route("/v1beta/models/{target}", models, methods=["POST"])])


# --------------------------------------------------------------------------------------------------
# Requests: record, auth, faults, validation


def _record(request: Request, raw: bytes, key: str) -> dict[str, Any]:
    headers = {k: (_redacted(k, v, key) if k in SECRET_HEADERS else v) for k, v in request.headers.items()}
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    return {
        "path": request.url.path,
        "query": dict(request.query_params),
        "headers": headers,
        "auth": _auth_scheme(request),
        "json": body,
    }


def _redacted(name: str, value: str, key: str) -> str:
    """A secret header as tests may see it: whether it held the right key, never the key."""
    if name == "authorization":
        scheme, _, token = value.partition(" ")
        return f"{scheme} {'<right key>' if token.strip() == key else '<wrong key>'}"
    return "<right key>" if value == key else "<wrong key>"


def _auth_scheme(request: Request) -> str | None:
    if "x-goog-api-key" in request.headers:
        return "goog"
    if request.headers.get("authorization", "").lower().startswith("bearer "):
        return "bearer"
    return None


def _check_auth(request: Request, key: str, mode: AuthMode) -> None:
    goog = request.headers.get("x-goog-api-key")
    bearer = request.headers.get("authorization", "")
    if goog is not None and mode in ("any", "goog"):
        if goog != key:
            # Google answers a wrong API key with 400, not 401.
            raise Refused(
                400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
                [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                  "domain": "googleapis.com"}],
            )  # fmt: skip
        return
    if bearer.lower().startswith("bearer ") and mode in ("any", "bearer"):
        if bearer[7:].strip() != key:
            raise Refused(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
        return
    raise Refused(401, "UNAUTHENTICATED", "Request is missing required authentication credential.")


def _early_fault(fault: Fault, options: EmulatorOptions) -> Response | None:
    """The faults that are a whole error response; the others happen inside a 200."""
    if fault is Fault.RATE_LIMITED:
        retry = f"{options.retry_after_s:g}"
        refused = Refused(
            429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).",
            [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry}s"}],
        )  # fmt: skip
        return _error(refused, {"Retry-After": retry})
    if fault is Fault.SERVER_ERROR:
        return _error(Refused(500, "INTERNAL", "An internal error has occurred."))
    if fault is Fault.UNAUTHORIZED:
        return _error(Refused(401, "UNAUTHENTICATED", "Request had invalid authentication credentials."))
    return None


def _parse(request: Request, raw: bytes, style: BodyStyle) -> Synthesis:
    model, _, method = request.path_params["target"].partition(":")
    if not _MODEL.match(model):
        raise Refused(404, "NOT_FOUND", f"models/{model[:80]} is not found for API version v1beta.")
    if method not in ("generateContent", "streamGenerateContent"):
        raise Refused(404, "NOT_FOUND", f"Method {method[:40]} is not found.")
    streaming = method == "streamGenerateContent"
    if streaming and request.query_params.get("alt") != "sse":
        raise Refused(400, "INVALID_ARGUMENT", "This emulator streams only with alt=sse.")
    try:
        body = json.loads(raw)
    except ValueError:
        raise Refused(400, "INVALID_ARGUMENT", "Invalid JSON payload received.") from None
    if not isinstance(body, dict):
        raise Refused(400, "INVALID_ARGUMENT", "Invalid JSON payload received. Expected an object.")
    _check_spelling(body, style)
    text = _text(body)
    speakers = _check_config(body)
    return Synthesis(model, streaming, text, speakers, snake="generation_config" in body)


def _check_spelling(value: Any, style: BodyStyle) -> None:
    """Strict styles refuse the other spelling's field names, as a strict relay would."""
    if style == "any":
        return
    if isinstance(value, dict):
        for key, item in value.items():
            wrong = "_" in key if style == "camel" else key != key.lower()
            if wrong:
                raise Refused(
                    400, "INVALID_ARGUMENT", f'Invalid JSON payload received. Unknown name "{key}": Cannot find field.'
                )
            _check_spelling(item, style)
    elif isinstance(value, list):
        for item in value:
            _check_spelling(item, style)


def _get(obj: Any, camel: str) -> Any:
    if not isinstance(obj, dict):
        return None
    return obj[camel] if camel in obj else obj.get(_HUMP.sub(r"_\1", camel).lower())


def _text(body: dict[str, Any]) -> str:
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise Refused(400, "INVALID_ARGUMENT", "* GenerateContentRequest.contents: contents is not specified")
    texts = []
    for content in contents:
        role = _get(content, "role")
        if role not in (None, "user"):
            raise Refused(400, "INVALID_ARGUMENT", "Please use a valid role: user.")
        parts = _get(content, "parts")
        if not isinstance(parts, list) or not parts:
            raise Refused(
                400, "INVALID_ARGUMENT", "* GenerateContentRequest.contents[0].parts: contents.parts must not be empty."
            )
        texts += [part["text"] for part in parts if isinstance(part, dict) and isinstance(part.get("text"), str)]
    text = "\n".join(texts)
    if not text.strip():
        raise Refused(400, "INVALID_ARGUMENT", "The input text is empty.")
    if len(text.encode()) > MAX_TEXT_BYTES:
        raise Refused(400, "INVALID_ARGUMENT", f"The input text exceeds the {MAX_TEXT_BYTES} byte limit.")
    return text


def _check_config(body: dict[str, Any]) -> tuple[str, ...]:
    """Validates generationConfig; returns the speaker names of multi-speaker mode (else ())."""
    generation = _get(body, "generationConfig")
    if not isinstance(generation, dict):
        raise Refused(
            400, "INVALID_ARGUMENT", "generationConfig with responseModalities AUDIO is required for TTS models."
        )
    modalities = _get(generation, "responseModalities")
    if not isinstance(modalities, list) or [str(m).upper() for m in modalities] != ["AUDIO"]:
        raise Refused(
            400, "INVALID_ARGUMENT", "The requested combination of response modalities is not supported by the model."
        )
    temperature = generation.get("temperature")
    if temperature is not None and (not isinstance(temperature, int | float) or not 0 <= temperature <= 2):
        raise Refused(400, "INVALID_ARGUMENT", "temperature must be between 0 and 2.")
    speech_config = _get(generation, "speechConfig") or {}
    language = _get(speech_config, "languageCode")
    if language is not None and (not isinstance(language, str) or not _LANGUAGE.match(language)):
        raise Refused(400, "INVALID_ARGUMENT", "Unsupported language code.")
    single = _get(speech_config, "voiceConfig")
    multi = _get(speech_config, "multiSpeakerVoiceConfig")
    if single is not None and multi is not None:
        raise Refused(400, "INVALID_ARGUMENT", "Only one of voice_config and multi_speaker_voice_config may be set.")
    if single is not None:
        _check_voice(single)
    if multi is None:
        return ()
    configs = _get(multi, "speakerVoiceConfigs")
    if not isinstance(configs, list) or len(configs) != 2:
        raise Refused(400, "INVALID_ARGUMENT", "Multi-speaker voice config needs exactly 2 speaker voice configs.")
    speakers = tuple(str(_get(config, "speaker") or "") for config in configs)
    if not all(s.isalnum() for s in speakers) or speakers[0] == speakers[1]:
        raise Refused(400, "INVALID_ARGUMENT", "Speaker names must be two different alphanumeric names.")
    for config in configs:
        _check_voice(_get(config, "voiceConfig"))
    return speakers


def _check_voice(voice_config: Any) -> None:
    name = _get(_get(voice_config, "prebuiltVoiceConfig"), "voiceName")
    if not isinstance(name, str) or name.lower() not in VOICES:
        raise Refused(400, "INVALID_ARGUMENT", f"Voice name {str(name)[:40]} is not supported.")


def _error(refused: Refused, headers: dict[str, str] | None = None) -> JSONResponse:
    error: dict[str, Any] = {"code": refused.code, "message": refused.message, "status": refused.status}
    if refused.details:
        error["details"] = refused.details
    return JSONResponse({"error": error}, status_code=refused.code, headers=headers)


# --------------------------------------------------------------------------------------------------
# Answers


def spoken_words(text: str, speakers: tuple[str, ...] = ()) -> str:
    """The words the service would speak: no style prompt, no inline tags, no speaker labels."""
    text = _TAG.sub(" ", _STYLE_PROMPT.sub("", text, count=1))
    labels = {f"{speaker}:" for speaker in speakers}
    return " ".join(word for word in text.split() if word not in labels)


def _audio(synthesis: Synthesis, kind: AudioKind) -> tuple[bytes, str, float]:
    """The whole audio, its mime type, and its bytes per second (for pacing)."""
    pcm = speech(spoken_words(synthesis.text, synthesis.speakers), RATE)
    seconds = max(len(pcm) / RATE, 1e-3)
    if kind == "mp3":
        data = encode(pcm, RATE, "mp3", "libmp3lame") if len(pcm) else b""
        return data, MP3_MIME, max(len(data) / seconds, 1.0)
    return pcm.astype("<i2").tobytes(), L16_MIME, RATE * 2.0


class _Events:
    """Builds answer objects: candidates, usageMetadata, spelled as the request was."""

    def __init__(self, synthesis: Synthesis, mime: str, bytes_per_second: float) -> None:
        self._synthesis = synthesis
        self._mime = mime
        self._bytes_per_second = bytes_per_second
        self._sent = 0
        self._id = uuid.uuid4().hex[:20]

    def audio(self, data: bytes, finish: str | None = None) -> dict[str, Any]:
        self._sent += len(data)
        part = {"inlineData": {"mimeType": self._mime, "data": base64.b64encode(data).decode()}}
        return self._event({"role": "model", "parts": [part]}, finish)

    def text(self, text: str, finish: str | None = None) -> dict[str, Any]:
        return self._event({"role": "model", "parts": [{"text": text}]}, finish)

    def finish(self, reason: str) -> dict[str, Any]:
        return self._event(None, reason)

    def _event(self, content: dict[str, Any] | None, finish: str | None) -> dict[str, Any]:
        candidate: dict[str, Any] = {"index": 0}
        if content is not None:
            candidate["content"] = content
        if finish is not None:
            candidate["finishReason"] = finish
        prompt = max(1, len(self._synthesis.text.encode()) // 4)
        audio = round(TOKENS_PER_SECOND * self._sent / self._bytes_per_second)
        event = {
            "candidates": [candidate],
            "usageMetadata": {
                "promptTokenCount": prompt,
                "candidatesTokenCount": audio,
                "totalTokenCount": prompt + audio,
            },
            "modelVersion": self._synthesis.model,
            "responseId": self._id,
        }
        return _snake_keys(event) if self._synthesis.snake else event


def _snake_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {_HUMP.sub(r"_\1", k).lower(): _snake_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_snake_keys(v) for v in value]
    return value


def _sse(synthesis: Synthesis, fault: Fault, options: EmulatorOptions, kind: AudioKind) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        if fault is Fault.STALL:
            await asyncio.sleep(3600)  # headers sent, nothing more; cancelled when the client goes
        data, mime, rate = _audio(synthesis, kind)
        events = _Events(synthesis, mime, rate)
        if fault is Fault.NO_AUDIO:
            yield _sse_line(events.text("I can't produce audio for that.", finish="STOP"))
            return
        step = max(1, int(rate * options.chunk_ms / 1000))
        count = max(1, -(-len(data) // step))
        half = count // 2
        index = 0
        async for piece in paced(data, options, rate):
            if fault in (Fault.CUTOFF, Fault.OTHER) and index == half:
                break
            index += 1
            last = index == count and fault is Fault.NONE
            yield _sse_line(events.audio(piece, finish="STOP" if last else None))
        if fault is Fault.OTHER:
            yield _sse_line(events.finish("OTHER"))  # the reported failure: a stream stopping early
        elif fault is Fault.CUTOFF:
            raise ConnectionAbortedError("emulated cutoff")  # uvicorn drops the connection mid-body
        elif not data:
            yield _sse_line(events.finish("STOP"))

    return StreamingResponse(body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _sse_line(event: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\r\n\r\n"


async def _whole(synthesis: Synthesis, fault: Fault, options: EmulatorOptions, kind: AudioKind) -> Response:
    data, mime, rate = _audio(synthesis, kind)
    events = _Events(synthesis, mime, rate)
    if fault is Fault.STALL:
        return StreamingResponse(_hang(), media_type="application/json")
    # generateContent answers when the whole audio exists.
    await asyncio.sleep(options.first_byte_ms / 1000)
    if options.rtf > 0:
        await asyncio.sleep(len(data) / rate / options.rtf)
    if fault is Fault.OTHER:
        return JSONResponse(events.finish("OTHER"))  # 200, no audio, finishReason OTHER
    if fault is Fault.NO_AUDIO:
        return JSONResponse(events.text("I can't produce audio for that.", finish="STOP"))
    answer = json.dumps(events.audio(data, finish="STOP")).encode()
    if fault is Fault.CUTOFF:
        return StreamingResponse(_cut(answer), media_type="application/json")
    return Response(answer, media_type="application/json")


async def _hang() -> AsyncIterator[bytes]:
    await asyncio.sleep(3600)
    yield b""


async def _cut(answer: bytes) -> AsyncIterator[bytes]:
    yield answer[: len(answer) // 2]
    raise ConnectionAbortedError("emulated cutoff")
