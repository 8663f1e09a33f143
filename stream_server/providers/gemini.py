"""`gemini`: Google's Gemini TTS models, on Google's own endpoint or on a relay.

One segment is one `generateContent` request, or, when streaming (the default), one
`streamGenerateContent?alt=sse` request whose Server-Sent Events each carry the next piece of
audio as base64 in `candidates[0].content.parts[].inlineData`. The audio's format is read from each
piece's `mimeType` (Google: `audio/L16;codec=pcm;rate=24000`, raw s16le; relay A: `audio/mp3`),
never assumed, and decoded as it arrives.

What is easy to get wrong with this API, and how it is handled here:
- A 200 may carry no audio at all, or end with `finishReason: "OTHER"` (also part-way through a
  stream, on long texts). Both are errors (`provider_bad_response`), never silence: retried or
  handed to a fallback while no audio went out, the end of the segment afterwards.
- An SSE stream that ends without any `finishReason` was cut off: an error, not a short segment.
- Style is part of the text ("Say cheerfully: ..."), and the whole text may be 8000 bytes, so the
  segmenter gets `max_bytes` = 8000 minus the style prefix.
- Voice names are case-insensitive upstream; the server validates voice ids exactly, so `voices`
  lists the canonical names ("Kore") and any spelling is mapped to them before a request.
- Google spells the body in camelCase; Vertex-style relays in snake_case (`gemini_body_style`).
  Responses are read in either spelling.
- Gemini has no speed parameter: `VoiceOptions.speed` is not sent (a style prompt such as
  "Say quickly" is the service's own way).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from ..media import PcmChunk
from ..settings import Settings
from .base import ProviderError, VoiceInfo, VoiceOptions
from .decoding import DecodeError, StreamingDecoder, decoder_for_mime
from .http import (
    AUTH,
    BAD_RESPONSE,
    RATE_LIMITED,
    REJECTED,
    UNAVAILABLE,
    HttpProvider,
    HttpSettings,
    decode_json,
    raise_for_status,
    sse_events,
)


SAMPLE_RATE = 24000
MAX_TEXT_BYTES = 8000
"""The whole text of one request (style prompt included), in UTF-8 bytes."""

VOICE_NAMES = (
    "Achernar", "Achird", "Algenib", "Algieba", "Alnilam", "Aoede", "Autonoe", "Callirrhoe", "Charon",
    "Despina", "Enceladus", "Erinome", "Fenrir", "Gacrux", "Iapetus", "Kore", "Laomedeia", "Leda", "Orus",
    "Pulcherrima", "Puck", "Rasalgethi", "Sadachbia", "Sadaltager", "Schedar", "Sulafat", "Umbriel",
    "Vindemiatrix", "Zephyr", "Zubenelgenubi",
)  # fmt: skip
_BY_LOWER = {name.lower(): name for name in VOICE_NAMES}

# Relay B documents a top-level `audioContent` (no mime type) as LINEAR16 24 kHz mono; unconfirmed
# whether it is ever sent, so it is read as that format when it is.
_AUDIO_CONTENT_MIME = f"audio/L16;codec=pcm;rate={SAMPLE_RATE}"

# finishReason values that mean the service refused the text: the same text would fail again.
_REFUSALS = frozenset({"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "LANGUAGE", "IMAGE_SAFETY"})

AuthStyle = Literal["goog", "bearer"]
BodyStyle = Literal["camel", "snake"]


def canonical_voice(name: str) -> str | None:
    """`"kore"`, `"KORE"` -> `"Kore"`; None for a name Gemini does not have."""
    return _BY_LOWER.get(name.strip().lower())


def resolve_auth(mode: str, base_url: str) -> AuthStyle:
    """`auto`: Google's hosts take `x-goog-api-key`, relays take a bearer token."""
    if mode in ("goog", "bearer"):
        return mode  # type: ignore[return-value]
    host = httpx.URL(base_url).host.lower()
    return "goog" if host == "googleapis.com" or host.endswith(".googleapis.com") else "bearer"


@dataclass(frozen=True, slots=True)
class GeminiConfig:
    """What Gemini needs beyond `HttpSettings`. Holds no secret (the key is in HttpSettings)."""

    auth: AuthStyle = "goog"
    body_style: BodyStyle = "camel"
    streaming: bool = True
    style: str | None = None
    """A style prompt put before the text: "Say cheerfully" -> "Say cheerfully: <text>"."""
    temperature: float | None = None
    language_code: str | None = None
    speakers: tuple[tuple[str, str], ...] = ()
    """Two-speaker mode: (speaker name as the text writes it, canonical voice) pairs."""

    @property
    def prefix(self) -> str:
        if not self.style or not self.style.strip():
            return ""
        return self.style.strip().rstrip(":").rstrip() + ": "


def parse_speakers(pairs: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """`("Joe=Kore", "Jane=puck")` -> `(("Joe", "Kore"), ("Jane", "Puck"))`; ValueError names the option."""
    speakers = []
    for pair in pairs:
        speaker, _, voice = (part.strip() for part in pair.partition("="))
        canonical = canonical_voice(voice)
        if not speaker.isalnum():
            raise ValueError(
                f"gemini speaker names are letters and digits only, not {speaker!r} - at `$.gemini_speakers`"
            )
        if canonical is None:
            raise ValueError(f"gemini has no voice {voice!r} - at `$.gemini_speakers`")
        speakers.append((speaker, canonical))
    if speakers and (len(speakers) != 2 or speakers[0][0] == speakers[1][0]):
        raise ValueError("gemini takes exactly two different speakers - at `$.gemini_speakers`")
    return tuple(speakers)


# --------------------------------------------------------------------------------------------------
# The request


def build_body(text: str, voice: str, config: GeminiConfig) -> dict[str, Any]:
    """The JSON body for `text` in `voice` (canonical), spelled as `config.body_style` says."""
    speech: dict[str, Any] = {}
    if config.speakers:
        # Gemini refuses voiceConfig and multiSpeakerVoiceConfig together: the speakers' voices win.
        speech["multiSpeakerVoiceConfig"] = {
            "speakerVoiceConfigs": [
                {"speaker": speaker, "voiceConfig": _prebuilt(name)} for speaker, name in config.speakers
            ]
        }
    else:
        speech["voiceConfig"] = _prebuilt(voice)
    if config.language_code:
        speech["languageCode"] = config.language_code
    generation: dict[str, Any] = {"responseModalities": ["AUDIO"]}
    if config.temperature is not None:
        generation["temperature"] = config.temperature
    generation["speechConfig"] = speech
    body = {
        "contents": [{"role": "user", "parts": [{"text": config.prefix + text}]}],
        "generationConfig": generation,
    }
    return _snake_keys(body) if config.body_style == "snake" else body


def _prebuilt(voice: str) -> dict[str, Any]:
    return {"prebuiltVoiceConfig": {"voiceName": voice}}


_HUMP = re.compile(r"(?<=[a-z0-9])([A-Z])")


def _snake_keys(value: Any) -> Any:
    """Keys (never values: voice names keep their case) from camelCase to snake_case."""
    if isinstance(value, dict):
        return {_HUMP.sub(r"_\1", key).lower(): _snake_keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_snake_keys(item) for item in value]
    return value


# --------------------------------------------------------------------------------------------------
# The answer


def _get(obj: Any, camel: str) -> Any:
    """`obj[camel]`, or its snake_case spelling (Vertex-style relays); None if neither is there."""
    if not isinstance(obj, dict):
        return None
    if camel in obj:
        return obj[camel]
    return obj.get(_HUMP.sub(r"_\1", camel).lower())


class _Answer:
    """Turns the JSON objects of one answer into PCM, and remembers how the answer ended.

    Pieces of one mime type share a decoder, so an MP3 frame split across two events decodes;
    a change of mime type closes the old decoder and opens a new one.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._mime: str | None = None
        self._decoder: StreamingDecoder | None = None
        self.finish_reason: str | None = None
        self.produced = False

    def take(self, event: Any) -> list[PcmChunk]:
        if not isinstance(event, dict):
            raise ProviderError(f"{self._name} sent an answer that is not a JSON object", code=BAD_RESPONSE)
        _raise_embedded_error(event, self._name)
        chunks: list[PcmChunk] = []
        candidates = _get(event, "candidates") or []
        candidate = candidates[0] if isinstance(candidates, list) and candidates else {}
        parts = _get(_get(candidate, "content"), "parts") or []
        for part in parts if isinstance(parts, list) else ():
            inline = _get(part, "inlineData")
            if inline is not None:
                chunks += self._decode(_get(inline, "mimeType"), _get(inline, "data"))
        if isinstance(audio := _get(event, "audioContent"), str):
            chunks += self._decode(_AUDIO_CONTENT_MIME, audio)
        reason = _get(candidate, "finishReason")
        if reason:
            self.finish_reason = str(reason)
        blocked = _get(_get(event, "promptFeedback"), "blockReason")
        if blocked:
            self.finish_reason = str(blocked)
        self.produced = self.produced or any(len(c.samples) for c in chunks)
        return chunks

    def close(self) -> list[PcmChunk]:
        chunks = self._close_decoder()
        self.produced = self.produced or any(len(c.samples) for c in chunks)
        return chunks

    def check_finish(self) -> None:
        """Raises for a finishReason other than STOP (e.g. OTHER, SAFETY)."""
        reason = self.finish_reason
        if reason is None or reason == "STOP":
            return
        if reason in _REFUSALS:
            raise ProviderError(f"{self._name} refused the text (finishReason {reason})", code=REJECTED)
        if reason == "MAX_TOKENS":
            raise ProviderError(f"{self._name} cut the audio short (finishReason {reason})", code=BAD_RESPONSE)
        # OTHER (and anything unknown) is the service's transient failure: worth a retry, which
        # the base class makes only while no audio has gone out.
        raise ProviderError(
            f"{self._name} stopped {'mid-answer' if self.produced else 'without audio'} (finishReason {reason})",
            code=BAD_RESPONSE,
            retryable=True,
        )

    def _decode(self, mime: Any, data: Any) -> list[PcmChunk]:
        if not isinstance(mime, str) or not isinstance(data, str):
            raise ProviderError(f"{self._name} sent audio without a mime type or data", code=BAD_RESPONSE)
        chunks: list[PcmChunk] = []
        key = mime.replace(" ", "").lower()
        try:
            if key != self._mime:
                chunks += self._close_decoder()
                self._decoder, self._mime = decoder_for_mime(mime), key
            assert self._decoder is not None
            return chunks + self._decoder.feed(_b64(data, self._name))
        except DecodeError:
            raise ProviderError(
                f"{self._name} sent audio that does not decode ({mime[:60]})", code=BAD_RESPONSE
            ) from None

    def _close_decoder(self) -> list[PcmChunk]:
        decoder, self._decoder, self._mime = self._decoder, None, None
        if decoder is None:
            return []
        try:
            return decoder.close()
        except DecodeError:
            raise ProviderError(f"{self._name} sent truncated audio", code=BAD_RESPONSE) from None


def _b64(data: str, name: str) -> bytes:
    try:
        if "-" in data or "_" in data:
            return base64.urlsafe_b64decode(data)
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ProviderError(f"{name} sent audio that is not base64", code=BAD_RESPONSE) from None


def _raise_embedded_error(event: dict[str, Any], name: str) -> None:
    """An error inside a 200 (Google sends `{"error": ...}` as an SSE event when a stream fails)."""
    error = event.get("error")
    if error is None:
        return
    code = _get(error, "code") if isinstance(error, dict) else None
    status = _get(error, "status") if isinstance(error, dict) else None
    label = " ".join(str(x) for x in (code, status) if x) or "error"
    if code == 429 or status == "RESOURCE_EXHAUSTED":
        raise ProviderError(f"{name} is rate limiting ({label})", code=RATE_LIMITED, retryable=True)
    if code in (401, 403) or status in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        raise ProviderError(f"{name} refused the server's credentials ({label})", code=AUTH)
    if isinstance(code, int) and 400 <= code < 500:
        raise ProviderError(f"{name} rejected the request ({label})", code=REJECTED)
    raise ProviderError(f"{name} failed mid-answer ({label})", code=UNAVAILABLE, retryable=True)


async def _sse_events(response: httpx.Response, name: str) -> AsyncIterator[Any]:
    """The JSON objects of an SSE body, each as soon as its event is complete.

    An event left without its blank line at the end of the body is taken too; a stream cut
    short still shows as one without its finishReason.
    """
    async for event in sse_events(response):
        if event.data and event.data.strip() != "[DONE]":  # some relays end OpenAI-style
            yield decode_json(event.data, name)


async def _json_events(response: httpx.Response, name: str) -> AsyncIterator[Any]:
    """A whole JSON answer: one object, or a list of them (streamGenerateContent without SSE)."""
    body = decode_json(await response.aread(), name)
    for event in body if isinstance(body, list) else [body]:
        yield event


# --------------------------------------------------------------------------------------------------
# The provider


class GeminiProvider(HttpProvider):
    name = "gemini"

    def __init__(
        self,
        settings: HttpSettings,
        config: GeminiConfig | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        # Set before the base class builds its client, which asks `_headers()` for the auth.
        self.config = config or GeminiConfig()
        super().__init__(settings, transport=transport)
        self.max_bytes = MAX_TEXT_BYTES - len(self.config.prefix.encode())
        default = canonical_voice(settings.voice) or "Kore"
        # The configured voice first: the session takes a provider's first voice as its default.
        names = [default, *(n for n in VOICE_NAMES if n != default)]
        language = self.config.language_code or "en"
        self._voices = tuple(VoiceInfo(id=n, sample_rate=SAMPLE_RATE, language=language) for n in names)

    @classmethod
    def from_settings(cls, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None) -> GeminiProvider:
        if canonical_voice(settings.gemini_voice) is None:
            raise ValueError(f"gemini has no voice {settings.gemini_voice!r} - at `$.gemini_voice`")
        if not settings.gemini_api_key:
            raise ValueError("gemini needs an API key - at `$.gemini_api_key`")
        base_url = settings.gemini_base_url.rstrip("/").removesuffix("/v1beta")
        http = HttpSettings.for_provider(
            settings, "gemini", base_url=base_url, model=settings.gemini_model.removeprefix("models/")
        )
        config = GeminiConfig(
            auth=resolve_auth(settings.gemini_auth, base_url),
            body_style=settings.gemini_body_style,
            streaming=settings.gemini_streaming,
            style=settings.gemini_style,
            temperature=settings.gemini_temperature,
            language_code=settings.gemini_language_code,
            speakers=parse_speakers(settings.gemini_speakers),
        )
        return cls(http, config, transport=transport)

    def __repr__(self) -> str:
        # Never the key (HttpSettings' own repr would show it).
        return f"GeminiProvider(base_url={self.settings.base_url!r}, model={self.settings.model!r}, auth={self.config.auth!r})"

    @property
    def voices(self) -> Sequence[VoiceInfo]:
        return self._voices

    def _headers(self) -> dict[str, str]:
        key = self.settings.api_key
        if not key:
            return {}
        return {"x-goog-api-key": key} if self.config.auth == "goog" else {"Authorization": f"Bearer {key}"}

    async def _attempt(self, text: str, options: VoiceOptions) -> AsyncGenerator[PcmChunk, None]:
        voice = canonical_voice(options.voice)
        if voice is None:
            raise ProviderError(f"{self.name} has no voice {options.voice[:40]!r}", code=REJECTED)
        body = build_body(text, voice, self.config)
        model = self.settings.model
        if self.config.streaming:
            url, params = f"/v1beta/models/{model}:streamGenerateContent", {"alt": "sse"}
        else:
            url, params = f"/v1beta/models/{model}:generateContent", {}
        async with self._client.stream("POST", url, params=params, json=body) as response:
            self._observe(response)
            await self._raise_for_status(response)
            async for chunk in self._audio(response):
                yield chunk

    async def _audio(self, response: httpx.Response) -> AsyncGenerator[PcmChunk, None]:
        content_type = response.headers.get("content-type", "").lower()
        # A relay may answer a streaming request with plain JSON: then it is complete by parsing.
        is_sse = "text/event-stream" in content_type
        events = _sse_events(response, self.name) if is_sse else _json_events(response, self.name)
        answer = _Answer(self.name)
        async for event in events:
            for chunk in answer.take(event):
                yield chunk
            answer.check_finish()  # after the event's audio: what came out before OTHER is kept
            if answer.finish_reason is not None:
                break
        for chunk in answer.close():
            yield chunk
        if is_sse and answer.finish_reason is None:
            raise ProviderError(
                f"{self.name} stream ended before its finishReason (cut off)", code=UNAVAILABLE, retryable=True
            )
        if not answer.produced:
            raise ProviderError(f"{self.name} answered without audio", code=BAD_RESPONSE, retryable=True)

    async def _raise_for_status(self, response: httpx.Response) -> None:
        """`raise_for_status`, plus what Google says in the body rather than in the status or headers."""
        if response.status_code in (400, 429):
            await response.aread()
            details = _error_details(response)
            if response.status_code == 400 and any(d.get("reason") == "API_KEY_INVALID" for d in details):
                # Google answers a wrong key with 400 INVALID_ARGUMENT, not 401.
                raise ProviderError(f"{self.name} refused the server's credentials (400 API_KEY_INVALID)", code=AUTH)
            if response.status_code == 429 and "retry-after" not in response.headers:
                delay = _retry_delay(details)
                if delay is not None:
                    self._rate_limit.update({"retry-after": f"{delay:g}"}, refused=True)
                    raise ProviderError(
                        f"{self.name} is rate limiting (429)", code=RATE_LIMITED, retryable=True, retry_after=delay
                    )
        await raise_for_status(response, self.name)


def _error_details(response: httpx.Response) -> list[dict[str, Any]]:
    """`error.details` of a Google error body (ErrorInfo, RetryInfo...); [] if there is none."""
    try:
        details = response.json().get("error", {}).get("details", [])
    except (ValueError, AttributeError):
        return []
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []


def _retry_delay(details: list[dict[str, Any]]) -> float | None:
    """Google's RetryInfo `retryDelay`, e.g. "37s" or "0.5s"."""
    for detail in details:
        delay = detail.get("retryDelay")
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return max(0.0, float(delay[:-1]))
            except ValueError:
                return None
    return None
