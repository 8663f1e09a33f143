"""`ttsai`: TTS.ai's REST API (https://api.tts.ai/v1/), in its two shapes.

- Streaming (`POST /v1/tts/stream/`, models kokoro and melotts): Server-Sent Events whose `data:`
  lines carry the audio as base64 in JSON. TTS.ai's page does not show the event payloads, so the
  reading here is deliberately tolerant (see `ttsai_events.interpret`) and says so where it guesses.
- Queue (`POST /v1/tts/` → poll `GET /v1/speech/results/?uuid=` → download `result_url`): for the
  other models. The whole wait counts against the first-audio timeout (`--ttsai-timeout-s`); the
  file is decoded as it downloads.

Every response carries `X-RateLimit-Limit/-Remaining/-Reset`; each one is observed, and every
request (polls included) first takes a turn from `_RequestBudget`, so the server waits for the
window's reset instead of being refused.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import replace
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import httpx
from msgspec import Meta

from ..logs import log_event
from ..media import PcmChunk
from .answers import SseParser
from .base import ProviderError, VoiceInfo, VoiceOptions
from .decoding import PCM_DEFAULT_RATE, DecodeError, StreamingDecoder, decoder_for_mime, open_decoder
from .http import BAD_RESPONSE, HttpProvider, HttpSettings, _reset_in, configured_voice, raise_for_status
from .spec import FIRST_AUDIO_BUDGET, ProviderSettings, ProviderSpec, SharedHttpSettings
from .ttsai_events import PENDING_STATUSES, AudioAssembler, decoded, interpret, short_message

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
`GET /v1/voices/` lists the rest (142); the configured `--ttsai-voice` is offered too."""

MIN_SPEED, MAX_SPEED = 0.5, 2.0


class TTSAISettings(ProviderSettings, kw_only=True):
    base_url: Annotated[str, Meta(description="TTS.ai API base, without /v1.")] = "https://api.tts.ai"
    api_key: Annotated[
        str | None, Meta(description="TTS.ai key, sk-tts-... (never logged; none: anonymous free tier).")
    ] = None
    model: Annotated[str, Meta(description="TTS.ai model (kokoro and melotts stream).")] = "kokoro"
    voice: Annotated[str, Meta(description="Default TTS.ai voice.")] = "af_bella"
    mode: Annotated[Mode, Meta(description="SSE streaming, queue-and-poll, or auto (stream where the model can).")] = (
        "auto"
    )
    poll_interval_s: Annotated[float, Meta(gt=0, le=60, description="Queue mode: seconds between result polls.")] = 1.5
    concurrency: Annotated[int, Meta(ge=1, le=1000, description="Requests at once.")] = 2
    timeout_s: Annotated[
        float, Meta(gt=0, le=600, description=FIRST_AUDIO_BUDGET + " Queue mode waits for the whole result.")
    ] = 60.0


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
        cls,
        settings: TTSAISettings,
        shared: SharedHttpSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        max_chars: int | None = None,
    ) -> TTSAIProvider:
        return cls(
            HttpSettings.for_provider(settings, shared),
            mode=settings.mode,
            poll_interval_s=settings.poll_interval_s,
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
            audio = AudioAssembler(self.name)
            events = SseParser()
            async for line in response.aiter_lines():
                event = events.line(line)
                if event is None:
                    continue
                piece = interpret(event, self.name)
                if piece is None:
                    break  # the end-of-stream event
                for chunk in audio.feed(piece):
                    yield chunk
            else:
                # A stream that simply ends is taken as complete: no end marker is documented.
                if (event := events.end()) is not None and (piece := interpret(event, self.name)) is not None:
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
                for chunk in decoded(decoder.feed, data, self.name):
                    yield chunk
            for chunk in decoded(lambda _: decoder.close(), b"", self.name):
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
            f"{name} failed the job ({short_message(job.get('error')) or 'no reason given'})",
            code=BAD_RESPONSE,
            retryable=True,
        )
    if status in PENDING_STATUSES:
        return None
    raise ProviderError(f"{name} reported an unknown job status", code=BAD_RESPONSE)


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


SPEC = ProviderSpec(
    name=TTSAIProvider.name,
    capabilities={"streaming": "SSE for kokoro/melotts, else queue and poll", "local": False, "timestamps": []},
    settings_type=TTSAISettings,
    build=TTSAIProvider.from_settings,
    default_voice=configured_voice,
)
