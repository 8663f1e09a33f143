"""`ttsai`: TTS.ai's REST API (https://api.tts.ai/v1/), in its two shapes.

- Streaming (`POST /v1/tts/stream/`, models kokoro and melotts): Server-Sent Events whose `data:`
  lines carry the audio as base64 in JSON. TTS.ai's page does not show the event payloads, so the
  reading here is deliberately tolerant (see `_interpret`) and says so where it guesses.
- Queue (`POST /v1/tts/` → poll `GET /v1/speech/results/?uuid=` → download `result_url`): for the
  other models. The whole wait counts against the first-audio timeout (`ttsai_timeout_s`); the
  file is decoded as it downloads.

Every response carries `X-RateLimit-Limit/-Remaining/-Reset`; each one is observed, and every
request (polls included) first takes a turn from `_RequestBudget`, so the server waits for the
window's reset instead of being refused.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from ..logs import log_event
from ..media import PcmChunk
from ..settings import Settings
from .base import ProviderError, VoiceInfo, VoiceOptions
from .decoding import PCM_DEFAULT_RATE, DecodeError, StreamingDecoder, decoder_for_mime, open_decoder
from .http import (
    BAD_RESPONSE,
    HttpProvider,
    HttpSettings,
    SseEvent,
    SseParser,
    _reset_in,
    json_object,
    raise_for_status,
)


logger = logging.getLogger(__name__)

Mode = Literal["auto", "stream", "queue"]

STREAMING_MODELS = frozenset({"kokoro", "melotts"})
"""The models the docs name for `/v1/tts/stream/` ("Kokoro, MeloTTS")."""

FREE_MAX_CHARS = 500
"""Anonymous and free tier: 500 characters per request (the plan table)."""
KEYED_MAX_CHARS = 5000
"""With a key. Keys exist on Pro and Enterprise only; the `text` field's description gives Pro
5,000 and Enterprise 50,000 characters (the plan table's "1,000,000" for Pro contradicts it), so
Pro's is assumed; pass `max_chars` for Enterprise."""

DOCUMENTED_VOICES = {"kokoro": (VoiceInfo("af_bella", 24000, "en"),)}
"""Per model, the voices the page names: only kokoro's af_bella (Kokoro speaks at 24 kHz).
`GET /v1/voices/` lists the rest (142); the configured `ttsai_voice` is offered too."""

MIN_SPEED, MAX_SPEED = 0.5, 2.0
_DONE_WORDS = frozenset({"done", "end", "complete", "completed", "finished", "stop"})
_PENDING_STATUSES = frozenset({"queued", "pending", "processing", "started", "running", "in_progress"})
_AUDIO_FIELDS = ("audio", "audio_base64", "audio_chunk", "chunk", "data", "b64")
_FORMAT_FIELDS = ("mime_type", "mime", "content_type", "format", "encoding", "audio_format")
_RATE_FIELDS = ("sample_rate", "sampleRate", "rate")


class TTSAIProvider(HttpProvider):
    name = "ttsai"

    def __init__(
        self,
        settings: HttpSettings,
        *,
        mode: Mode = "auto",
        poll_interval_s: float = 1.5,
        max_chars: int | None = None,
        audio_format: str = "mp3",
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(_without_v1(settings), transport=transport)
        self.mode = mode
        self.poll_interval_s = poll_interval_s
        self.max_chars = max_chars or (KEYED_MAX_CHARS if settings.api_key else FREE_MAX_CHARS)
        self.audio_format = audio_format
        self._budget = _RequestBudget()
        self._voices = _voices_for(settings.model, settings.voice)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None, max_chars: int | None = None
    ) -> TTSAIProvider:
        http = HttpSettings.for_provider(settings, "ttsai")
        return cls(
            http,
            mode=settings.ttsai_mode,
            poll_interval_s=settings.ttsai_poll_interval_s,
            max_chars=max_chars,
            transport=transport,
        )

    def __repr__(self) -> str:
        # Never the key: only whether there is one.
        key = "set" if self.settings.api_key else "none (anonymous)"
        base, model = self.settings.base_url, self.settings.model
        return f"TTSAIProvider(base_url={base!r}, model={model!r}, mode={self.mode!r}, key={key})"

    @property
    def voices(self) -> Sequence[VoiceInfo]:
        return self._voices

    @property
    def streams(self) -> bool:
        """SSE or queue. "stream" is honoured for any model (the operator asked for it); "auto"
        streams only the models the docs name."""
        return self.mode == "stream" or (self.mode == "auto" and self.settings.model in STREAMING_MODELS)

    def _attempt(self, text: str, options: VoiceOptions) -> AsyncGenerator[PcmChunk, None]:
        return self._stream(text, options) if self.streams else self._queue(text, options)

    def _body(self, text: str, options: VoiceOptions) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.settings.model, "text": text, "voice": options.voice}
        if options.speed != 1.0:
            # The protocol allows 0.25-4; TTS.ai takes 0.5-2 and would refuse the whole segment.
            body["speed"] = min(MAX_SPEED, max(MIN_SPEED, options.speed))
        return body

    async def _checked(self, response: httpx.Response) -> None:
        self._observe(response)
        self._budget.update(response.headers)
        await raise_for_status(response, self.name)

    async def _turn(self) -> None:
        """Wait until a request would not be refused: a Retry-After, or a window used up (the
        budget also counts requests still in flight, which the last headers do not know of)."""
        while delay := self._rate_limit.delay() or self._budget.take():
            await asyncio.sleep(delay)

    # -- streaming: POST /v1/tts/stream/ → SSE --------------------------------------------------

    async def _stream(self, text: str, options: VoiceOptions) -> AsyncGenerator[PcmChunk, None]:
        await self._turn()
        headers = {"Accept": "text/event-stream"}
        async with self._client.stream(
            "POST", "/v1/tts/stream/", json=self._body(text, options), headers=headers
        ) as response:
            await self._checked(response)
            audio = _AudioAssembler(self.name)
            events = SseParser()
            async for line in response.aiter_lines():
                event = events.line(line)
                if event is None:
                    continue
                piece = _interpret(event, self.name)
                if piece is None:
                    break  # the end-of-stream event
                for chunk in audio.feed(piece):
                    yield chunk
            else:
                # A stream that simply ends is taken as complete: no end marker is documented.
                if (event := events.end()) is not None and (piece := _interpret(event, self.name)) is not None:
                    for chunk in audio.feed(piece):
                        yield chunk
            for chunk in audio.close():
                yield chunk

    # -- queue: POST /v1/tts/ → poll → download ------------------------------------------------

    async def _queue(self, text: str, options: VoiceOptions) -> AsyncGenerator[PcmChunk, None]:
        started = time.monotonic()
        job = await self._submit({**self._body(text, options), "format": self.audio_format})
        polls = 0
        while (url := _result_url(job, self.name)) is None:
            await asyncio.sleep(self.poll_interval_s)
            job = await self._poll(job)
            polls += 1
        log_event(
            logger,
            "ttsai.job_done",
            level=logging.DEBUG,
            polls=polls,
            waited_ms=round((time.monotonic() - started) * 1000.0),
        )
        async for chunk in self._download(url):
            yield chunk

    async def _submit(self, body: dict[str, Any]) -> dict[str, Any]:
        await self._turn()
        response = await self._client.post("/v1/tts/", json=body)
        await self._checked(response)
        job = _json_object(response, self.name)
        uuid = job.get("uuid") or job.get("job_id")
        if not isinstance(uuid, str) or not uuid:
            raise ProviderError(f"{self.name} queued the request without a job id", code=BAD_RESPONSE)
        return {**job, "uuid": uuid}

    async def _poll(self, job: dict[str, Any]) -> dict[str, Any]:
        """The job's new state. A poll that fails transiently (a 429, a 5xx, a dropped connection)
        leaves the job as it was, to be polled again: resubmitting would queue (and pay for) the
        same text twice. The first-audio timeout still bounds the wait."""
        await self._turn()
        try:
            response = await self._client.get("/v1/speech/results/", params={"uuid": job["uuid"]})
            await self._checked(response)
        except (ProviderError, httpx.TransportError) as exc:
            if isinstance(exc, ProviderError) and not exc.retryable:
                raise
            log_event(
                logger, "ttsai.poll_failed", level=logging.WARNING, error=getattr(exc, "code", type(exc).__name__)
            )
            return job
        return {**_json_object(response, self.name), "uuid": job["uuid"]}

    async def _download(self, url: str) -> AsyncGenerator[PcmChunk, None]:
        # A static file, not an API call: no turn taken from the rate-limit budget.
        request = self._client.build_request("GET", url)
        if not self._same_origin(request.url):
            # result_url may point at a CDN: the key goes to the API's own host only.
            request.headers.pop("Authorization", None)
        response = await self._client.send(request, stream=True)
        try:
            await self._checked(response)
            decoder = self._file_decoder(response, url)
            async for data in response.aiter_bytes():
                for chunk in _decoded(decoder.feed, data, self.name):
                    yield chunk
            for chunk in _decoded(lambda _: decoder.close(), b"", self.name):
                yield chunk
        finally:
            await response.aclose()

    def _same_origin(self, url: httpx.URL) -> bool:
        base = self._client.base_url
        return (url.scheme, url.host, url.port) == (base.scheme, base.host, base.port)

    def _file_decoder(self, response: httpx.Response, url: str) -> StreamingDecoder:
        """By the Content-Type when it is audio, else by the file's extension, else the format asked."""
        mime = response.headers.get("content-type", "")
        extension = urlsplit(url).path.rpartition(".")[2].lower()
        try:
            if mime.lower().startswith("audio/"):
                return decoder_for_mime(mime, sample_rate=PCM_DEFAULT_RATE)
            return open_decoder(extension if extension in ("mp3", "wav", "flac", "ogg") else self.audio_format)
        except DecodeError:
            raise ProviderError(f"{self.name} sent audio of an unknown type", code=BAD_RESPONSE) from None


def _voices_for(model: str, voice: str) -> tuple[VoiceInfo, ...]:
    """The model's documented voices and the configured one, that one first (a stream that names
    no voice gets it). The rate of an undocumented voice is a guess: 24 kHz, like Kokoro."""
    voices = DOCUMENTED_VOICES.get(model, ())
    if voice and voice not in {v.id for v in voices}:
        voices = (VoiceInfo(voice, PCM_DEFAULT_RATE, "en"), *voices)
    return tuple(sorted(voices, key=lambda v: v.id != voice))


def _without_v1(settings: HttpSettings) -> HttpSettings:
    """The docs give the base as https://api.tts.ai/v1/; the paths here carry /v1 themselves."""
    base = settings.base_url.rstrip("/")
    return replace(settings, base_url=base.removesuffix("/v1"))


def _json_object(response: httpx.Response, name: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ProviderError(f"{name} answered with something other than a JSON object", code=BAD_RESPONSE)
    return body


def _result_url(job: Mapping[str, Any], name: str) -> str | None:
    """The audio's URL once the job completed; None while it is queued or processing."""
    status = str(job.get("status", "")).lower()
    if status == "completed":
        url = job.get("result_url")
        if not isinstance(url, str) or not url:
            raise ProviderError(f"{name} completed the job without a result_url", code=BAD_RESPONSE)
        return url
    if status == "failed":
        # Often transient (a busy GPU worker): retried before any audio, then the fallback.
        raise ProviderError(
            f"{name} failed the job ({_short(job.get('error')) or 'no reason given'})",
            code=BAD_RESPONSE,
            retryable=True,
        )
    if status in _PENDING_STATUSES:
        return None
    raise ProviderError(f"{name} reported an unknown job status", code=BAD_RESPONSE)


def _decoded(step: Callable[[bytes], list[PcmChunk]], data: bytes, name: str) -> list[PcmChunk]:
    try:
        return step(data)
    except DecodeError:
        raise ProviderError(f"{name} sent audio that does not decode", code=BAD_RESPONSE) from None


def _short(message: object) -> str:
    if isinstance(message, dict):
        message = message.get("message") or message.get("detail")
    return str(message)[:100] if message else ""


# --------------------------------------------------------------------------------------------------
# Rate limits


class _RequestBudget:
    """Requests left in the upstream's current window, counted down locally as requests start.

    `X-RateLimit-Remaining` says what was left when *that* response was made: with two requests
    in flight, both may see "1" and both go, and one is refused. Counting each request as it
    starts closes that race; the headers only ever lower the count within a window.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._left: int | None = None  # None: unknown, nothing to wait for
        self._reset_at = 0.0

    def update(self, headers: Mapping[str, str]) -> None:
        try:
            remaining = int(headers.get("x-ratelimit-remaining", ""))
        except ValueError:
            return
        now = self._clock()
        reset = _reset_in(headers.get("x-ratelimit-reset"), self._clock)
        new_window = self._left is None or now >= self._reset_at
        self._left = remaining if new_window else min(self._left or 0, remaining)
        if reset is not None:
            self._reset_at = now + reset

    def take(self) -> float:
        """0.0 and one request counted, or the seconds to wait for the window's reset."""
        now = self._clock()
        if self._left is None:
            return 0.0
        if now >= self._reset_at:
            self._left = None  # a new window: the next response says how much it holds
            return 0.0
        if self._left > 0:
            self._left -= 1
            return 0.0
        return self._reset_at - now


# --------------------------------------------------------------------------------------------------
# Server-Sent Events


@dataclass(frozen=True, slots=True)
class _AudioPiece:
    data: bytes
    fmt: str | None  # a MIME type or a format name, if the event said
    rate: int | None


def _interpret(event: SseEvent, name: str) -> _AudioPiece | None:
    """One event: audio, None for the end of the stream, or a ProviderError.

    UNCONFIRMED FORMAT: TTS.ai does not document the events. Accepted: JSON objects whose audio is
    base64 in one of `_AUDIO_FIELDS` (optionally a data: URL), with an optional format or MIME
    type (`_FORMAT_FIELDS`) and sample rate (`_RATE_FIELDS`); an end marker (`[DONE]`, an event or
    `type` named done/end/complete, `"done": true`); progress events with a queue status. An
    `error` event or field, and anything else, is an error: guessing could play garbage.
    """
    data = event.data.strip()
    kind = event.event.lower()
    if kind == "error":
        raise _stream_error(name, _error_message(data))
    if data == "[DONE]" or (kind in _DONE_WORDS and not data):
        return None
    body = json_object(data, name)
    kind = str(body.get("type") or body.get("event") or kind).lower()
    status = str(body.get("status", "")).lower()
    if body.get("error") or kind == "error" or status in ("failed", "error"):
        raise _stream_error(name, _short(body.get("error") or body.get("message")))
    if (piece := _audio_piece(body, name)) is not None:
        return piece
    if body.get("done") is True or kind in _DONE_WORDS or kind.endswith((".done", "_done")) or status in _DONE_WORDS:
        return None
    if status in _PENDING_STATUSES and set(body) <= {"status", "type", "event", "uuid", "job_id", "progress"}:
        return _AudioPiece(b"", None, None)
    raise ProviderError(f"{name} sent an unexpected stream event", code=BAD_RESPONSE)


def _audio_piece(body: Mapping[str, Any], name: str) -> _AudioPiece | None:
    encoded = next((body[f] for f in _AUDIO_FIELDS if isinstance(body.get(f), str) and body[f]), None)
    if encoded is None:
        return None
    fmt = next((str(body[f]) for f in _FORMAT_FIELDS if isinstance(body.get(f), str) and body[f]), None)
    rate = next((body[f] for f in _RATE_FIELDS if isinstance(body.get(f), int) and body[f] > 0), None)
    if encoded.startswith("data:") and ";base64," in encoded:
        header, _, encoded = encoded.partition(";base64,")
        fmt = header[len("data:") :] or fmt
    try:
        return _AudioPiece(base64.b64decode(encoded, validate=True), fmt, rate)
    except (binascii.Error, ValueError):
        raise ProviderError(f"{name} sent audio that is not valid base64", code=BAD_RESPONSE) from None


def _error_message(data: str) -> str:
    try:
        body = json.loads(data)
    except ValueError:
        return _short(data)
    return _short(body.get("error") or body.get("message")) if isinstance(body, dict) else ""


def _stream_error(name: str, message: str) -> ProviderError:
    # Before any audio this is worth one more try (or the fallback); after, the segment ends.
    return ProviderError(
        f"{name} reported an error in its stream ({message or 'no reason given'})", code=BAD_RESPONSE, retryable=True
    )


def _sniff(data: bytes) -> str | None:
    """The container a piece of audio starts, if it starts one (a new file: a new decoder)."""
    if data[:4] == b"RIFF":
        return "wav"
    if data[:4] == b"fLaC":
        return "flac"
    if data[:3] == b"ID3":
        return "mp3"
    if data[:4] == b"OggS" and len(data) > 5 and data[5] & 0x02:  # only a beginning-of-stream page
        return "ogg"
    return None


class _AudioAssembler:
    """Decodes the audio of successive events, whether they continue one stream (raw PCM, MP3
    frames, the rest of a WAV) or are each a whole file (a WAV per sentence piece): a piece that
    starts a new container closes the previous decoder and opens a fresh one."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._decoder: StreamingDecoder | None = None

    def feed(self, piece: _AudioPiece) -> list[PcmChunk]:
        if not piece.data:
            return []
        out: list[PcmChunk] = []
        container = _sniff(piece.data)
        if self._decoder is None or container is not None:
            out += self.close()
            self._decoder = self._open(container, piece)
        decoder = self._decoder
        return out + _decoded(decoder.feed, piece.data, self._name)

    def close(self) -> list[PcmChunk]:
        decoder, self._decoder = self._decoder, None
        return [] if decoder is None else _decoded(lambda _: decoder.close(), b"", self._name)

    def _open(self, container: str | None, piece: _AudioPiece) -> StreamingDecoder:
        rate = piece.rate or PCM_DEFAULT_RATE
        try:
            if container is not None:
                return open_decoder(container)
            if piece.fmt and "/" in piece.fmt:
                return decoder_for_mime(piece.fmt, sample_rate=rate)
            if piece.fmt:
                return open_decoder(piece.fmt, sample_rate=rate)
            if piece.data[0] == 0xFF and piece.data[1:2] and piece.data[1] & 0xE0 == 0xE0:
                return open_decoder("mp3")  # an MPEG frame sync, and nothing said otherwise
            return open_decoder("pcm", sample_rate=rate)  # unlabelled: s16le at 24 kHz, like Kokoro
        except DecodeError:
            raise ProviderError(f"{self._name} sent audio of an unknown type", code=BAD_RESPONSE) from None
