"""`openai`: OpenAI's `/v1/audio/speech`, or any relay that speaks the same API.

One request per segment. The answer streams either as raw audio bytes (chunked transfer encoding,
`response_format` pcm by default: 24 kHz s16le mono, nothing to decode) or, with
`stream_format: "sse"`, as Server-Sent Events carrying base64 audio deltas. Either way the bytes go
through the incremental decoder as they arrive, so the first PCM leaves before the answer ends.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import replace
from typing import Annotated, Any, Literal

import httpx
from msgspec import Meta

from ..media import PcmChunk
from .answers import json_object, sse_events
from .base import ProviderError, VoiceInfo, VoiceOptions
from .decoding import DecodeError, StreamingDecoder, open_decoder
from .http import BAD_RESPONSE, UNAVAILABLE, HttpProvider, HttpSettings, configured_voice, raise_for_status
from .spec import FIRST_AUDIO_BUDGET, ProviderSettings, ProviderSpec, SharedHttpSettings

ResponseFormat = Literal["pcm", "mp3", "opus", "aac", "flac", "wav"]
StreamFormat = Literal["audio", "sse"]

SAMPLE_RATE = 24000
"""OpenAI's voices speak at 24 kHz (and `pcm` is 24 kHz)."""
MAX_INPUT_CHARS = 4096
MIN_SPEED, MAX_SPEED = 0.25, 4.0
VOICES = ("alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse")
LANGUAGE = "en"  # the voices are multilingual; "en" only picks the segmenter's default rules
SPEECH_PATH = "/v1/audio/speech"


class OpenAISettings(ProviderSettings, kw_only=True):
    base_url: Annotated[
        str, Meta(description="OpenAI-compatible API base (the official one or a relay), with or without /v1.")
    ] = "https://api.openai.com"
    api_key: Annotated[str | None, Meta(description="OpenAI-compatible API key (never logged).")] = None
    model: Annotated[str, Meta(description="Model for /v1/audio/speech.")] = "gpt-4o-mini-tts"
    voice: Annotated[str, Meta(description="Default OpenAI voice.")] = "alloy"
    response_format: Annotated[
        ResponseFormat, Meta(description="Audio asked of the upstream (pcm: 24 kHz s16le, nothing to decode).")
    ] = "pcm"
    stream_format: Annotated[StreamFormat, Meta(description="Raw streamed body, or SSE speech.audio.delta events.")] = (
        "audio"
    )
    instructions: Annotated[str | None, Meta(description="Style instructions (not for tts-1/tts-1-hd).")] = None
    concurrency: Annotated[int, Meta(ge=1, le=1000, description="Requests at once.")] = 8
    timeout_s: Annotated[float, Meta(gt=0, le=600, description=FIRST_AUDIO_BUDGET)] = 2.0


class OpenAIProvider(HttpProvider):
    name = "openai"
    max_chars: int | None = MAX_INPUT_CHARS
    max_bytes: int | None = None

    def __init__(
        self,
        settings: HttpSettings,
        *,
        response_format: ResponseFormat = "pcm",
        stream_format: StreamFormat = "audio",
        instructions: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(_without_v1(settings), transport=transport)
        self.response_format = response_format
        # tts-1 and tts-1-hd refuse both `stream_format: "sse"` and `instructions`: for them the
        # audio is streamed as raw bytes and the instructions are dropped, rather than every
        # segment failing on a setting the model cannot honour.
        self.stream_format: StreamFormat = "audio" if _is_tts1(settings.model) else stream_format
        self.instructions = None if _is_tts1(settings.model) else instructions or None
        self._voices = _voice_list(settings.voice)

    @classmethod
    def from_settings(
        cls, settings: OpenAISettings, shared: SharedHttpSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> OpenAIProvider:
        return cls(
            HttpSettings.for_provider(settings, shared),
            response_format=settings.response_format,
            stream_format=settings.stream_format,
            instructions=settings.instructions,
            transport=transport,
        )

    def __repr__(self) -> str:
        # Never the key (HttpSettings' own repr would show it).
        return (
            f"OpenAIProvider(base_url={self.settings.base_url!r}, model={self.settings.model!r}, "
            f"response_format={self.response_format!r}, stream_format={self.stream_format!r})"
        )

    @property
    def voices(self) -> Sequence[VoiceInfo]:
        return self._voices

    # -- one request -----------------------------------------------------------------------------

    def request_body(self, text: str, options: VoiceOptions) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.settings.model,
            "input": text,
            "voice": options.voice,
            "response_format": self.response_format,
            "speed": min(MAX_SPEED, max(MIN_SPEED, options.speed)),
        }
        if self.instructions:
            body["instructions"] = self.instructions
        if self.stream_format == "sse":
            body["stream_format"] = "sse"
        return body

    async def _attempt(self, text: str, options: VoiceOptions) -> AsyncGenerator[PcmChunk, None]:
        body = self.request_body(text, options)
        async with self._client.stream("POST", SPEECH_PATH, json=body) as response:
            self._observe(response)
            await raise_for_status(response, self.name)
            kind = await self._answer_kind(response)
            decoder = self._decoder()
            pieces = _sse_audio(response, self.name) if kind == "sse" else _body_audio(response)
            # aclosing: a cancelled segment stops reading now, not when the generator is collected.
            async with aclosing(pieces):
                async for piece in pieces:
                    for chunk in self._feed(decoder, piece):
                        yield chunk
            for chunk in self._finish(decoder):
                yield chunk

    async def _answer_kind(self, response: httpx.Response) -> Literal["audio", "sse"]:
        """What the 200 carries, by its Content-Type rather than by what was asked: a relay may
        ignore `stream_format`, and some relays answer errors with a 200 and a JSON body."""
        mime = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if mime == "text/event-stream":
            return "sse"
        if mime in ("application/json", "text/plain", "text/html"):
            raise ProviderError(
                f"{self.name} answered {response.status_code} without audio ({await _error_code(response)})",
                code=BAD_RESPONSE,
            )
        return "audio"  # audio/*, application/octet-stream, or no type at all

    def _decoder(self) -> StreamingDecoder:
        # Decode by the format asked for: relays label audio inconsistently (audio/opus for Ogg,
        # application/octet-stream for everything), and pcm has no header to recognise.
        return open_decoder(self.response_format, sample_rate=SAMPLE_RATE)

    def _feed(self, decoder: StreamingDecoder, data: bytes) -> list[PcmChunk]:
        try:
            return decoder.feed(data)
        except DecodeError:
            raise ProviderError(
                f"{self.name} sent {self.response_format} audio that does not decode", code=BAD_RESPONSE
            ) from None

    def _finish(self, decoder: StreamingDecoder) -> list[PcmChunk]:
        try:
            return decoder.close()
        except DecodeError:
            raise ProviderError(f"{self.name} sent truncated {self.response_format} audio", code=BAD_RESPONSE) from None

    def _observe(self, response: httpx.Response) -> None:
        # OpenAI names its rate-limit headers per resource (`x-ratelimit-remaining-requests`,
        # reset as a duration like "6m0s") and adds `retry-after-ms`; the shared RateLimit reads
        # the generic names, so they are translated here.
        self._rate_limit.update(_generic_rate_limit(response.headers), refused=response.status_code == 429)


# -- the answer's audio bytes ------------------------------------------------------------------------


async def _body_audio(response: httpx.Response) -> AsyncGenerator[bytes, None]:
    """The body as it arrives (chunked transfer encoding): audio bytes cut anywhere."""
    async for data in response.aiter_bytes():
        yield data


async def _sse_audio(response: httpx.Response, name: str) -> AsyncGenerator[bytes, None]:
    """The audio bytes of `speech.audio.delta` events, until `speech.audio.done`.

    A stream that ends without `speech.audio.done` was cut off (a proxy may end a chunked body
    cleanly even when the upstream dropped): that is an error, not the end of the audio.
    """
    async for event in _sse_events(response, name):
        kind = event.get("type")
        if kind == "speech.audio.delta":
            audio = event.get("audio")
            if audio:
                yield _b64(audio, name)
        elif kind == "speech.audio.done":
            return
        elif kind == "error" or "error" in event:
            raise ProviderError(f"{name} reported an error mid-stream", code=UNAVAILABLE, retryable=True)
        # Other event types (future additions) carry no audio: skipped.
    raise ProviderError(f"{name} stream ended before speech.audio.done", code=UNAVAILABLE, retryable=True)


async def _sse_events(response: httpx.Response, name: str) -> AsyncIterator[dict[str, Any]]:
    """JSON objects of the events' `data:` fields, one per event."""
    async for event in sse_events(response):
        if not event.data:
            continue  # an `event:` line alone carries nothing here
        if event.data.strip() == "[DONE]":  # some relays end every stream this way
            yield {"type": "speech.audio.done"}
            return
        yield json_object(event.data, name)


def _b64(audio: object, name: str) -> bytes:
    try:
        return base64.b64decode(str(audio), validate=True)
    except (binascii.Error, ValueError):
        raise ProviderError(f"{name} sent audio that is not base64", code=BAD_RESPONSE) from None


# -- helpers -------------------------------------------------------------------------------------


def _is_tts1(model: str) -> bool:
    """tts-1, tts-1-hd and their dated versions; relays may prefix a vendor ("openai/tts-1")."""
    return model.rsplit("/", 1)[-1].startswith("tts-1")


def _without_v1(settings: HttpSettings) -> HttpSettings:
    """The base URL may end in /v1 (relays document theirs so) or not, with a slash or without."""
    base = settings.base_url.rstrip("/")
    return replace(settings, base_url=base.removesuffix("/v1")) if base.endswith("/v1") else settings


def _voice_list(configured: str) -> tuple[VoiceInfo, ...]:
    """The documented voices, the configured default first (a stream without a voice gets the
    first). A configured voice not in the list (a relay's own, a newer one) is offered too."""
    ids = [configured] if configured else []
    ids += [voice for voice in VOICES if voice != configured]
    return tuple(VoiceInfo(id=voice, sample_rate=SAMPLE_RATE, language=LANGUAGE) for voice in ids)


async def _error_code(response: httpx.Response) -> str:
    """The `code` or `type` of an OpenAI-style error body, never its message (a 401's message
    quotes part of the key)."""
    await response.aread()
    try:
        body = response.json()
    except ValueError:
        return response.headers.get("content-type", "no audio")
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("code") or error.get("type") or "error")[:80]
    return "error"


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def _duration_s(value: str | None) -> float | None:
    """OpenAI's reset durations: "1s", "6m0s", "20ms", "1h2m3.5s"; plain numbers are seconds."""
    if not value:
        return None
    value = value.strip()
    try:
        return float(value)
    except ValueError:
        pass
    parts = _DURATION_PART.findall(value)
    if not parts or "".join(number + unit for number, unit in parts) != value:
        return None
    return sum(float(number) * _UNIT_S[unit] for number, unit in parts)


def _generic_rate_limit(headers: Mapping[str, str]) -> dict[str, str]:
    """OpenAI's headers in the names the shared RateLimit reads: the longest wait they imply."""
    out: dict[str, str] = {}
    waits: list[float] = []
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            waits.append(max(0.0, float(ms) / 1000))
        except ValueError:
            pass
    if (after := headers.get("retry-after")) is not None:
        out["retry-after"] = after
    for resource in ("requests", "tokens"):
        remaining = headers.get(f"x-ratelimit-remaining-{resource}")
        if remaining is not None and remaining.strip() == "0":
            reset = _duration_s(headers.get(f"x-ratelimit-reset-{resource}"))
            waits.append(1.0 if reset is None else reset)
    if waits and "retry-after" not in out:
        out["retry-after"] = f"{max(waits):.3f}"
    # A relay may use the generic names itself.
    for key in ("x-ratelimit-remaining", "x-ratelimit-reset"):
        if (value := headers.get(key)) is not None:
            out[key] = value
    return out


SPEC = ProviderSpec(
    name=OpenAIProvider.name,
    capabilities={"streaming": "chunked body or SSE", "local": False, "timestamps": []},
    settings_type=OpenAISettings,
    build=OpenAIProvider.from_settings,
    default_voice=configured_voice,
)
