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

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import httpx
from msgspec import Meta

from ..media import PcmChunk
from .base import ProviderError, VoiceInfo, VoiceOptions
from .gemini_answer import SAMPLE_RATE, Answer, json_events, snake_case, sse_json_events
from .http import (
    AUTH,
    BAD_RESPONSE,
    RATE_LIMITED,
    REJECTED,
    UNAVAILABLE,
    HttpProvider,
    HttpSettings,
    configured_voice,
    raise_for_status,
)
from .spec import FIRST_AUDIO_BUDGET, ProviderSettings, ProviderSpec, SharedHttpSettings

MAX_TEXT_BYTES = 8000
"""The whole text of one request (style prompt included), in UTF-8 bytes."""

VOICE_NAMES = (
    "Achernar", "Achird", "Algenib", "Algieba", "Alnilam", "Aoede", "Autonoe", "Callirrhoe", "Charon",
    "Despina", "Enceladus", "Erinome", "Fenrir", "Gacrux", "Iapetus", "Kore", "Laomedeia", "Leda", "Orus",
    "Pulcherrima", "Puck", "Rasalgethi", "Sadachbia", "Sadaltager", "Schedar", "Sulafat", "Umbriel",
    "Vindemiatrix", "Zephyr", "Zubenelgenubi",
)  # fmt: skip
_BY_LOWER = {name.lower(): name for name in VOICE_NAMES}

AuthStyle = Literal["goog", "bearer"]
BodyStyle = Literal["camel", "snake"]


class GeminiSettings(ProviderSettings, kw_only=True):
    base_url: Annotated[str, Meta(description="Gemini API base (Google's or a relay), without /v1beta.")] = (
        "https://generativelanguage.googleapis.com"
    )
    api_key: Annotated[str | None, Meta(description="Gemini API key (never logged).")] = None
    model: Annotated[str, Meta(description="Gemini TTS model.")] = "gemini-2.5-flash-preview-tts"
    voice: Annotated[str, Meta(description="Default prebuilt voice (case-insensitive).")] = "Kore"
    auth: Annotated[
        Literal["auto", "goog", "bearer"],
        Meta(description="x-goog-api-key (goog), Authorization: Bearer (relays), or auto by host."),
    ] = "auto"
    body_style: Annotated[BodyStyle, Meta(description="REST camelCase, or snake_case for Vertex-style relays.")] = (
        "camel"
    )
    streaming: Annotated[bool, Meta(description="streamGenerateContent (SSE); false: generateContent.")] = True
    language_code: Annotated[str | None, Meta(description="speechConfig.languageCode, e.g. en-US.")] = None
    style: Annotated[str | None, Meta(description='Style prompt put before the text, e.g. "Say cheerfully".')] = None
    temperature: Annotated[float, Meta(ge=0, le=2)] | None = None
    speakers: Annotated[
        tuple[str, ...],
        Meta(description="Two-speaker mode: exactly two Speaker=Voice pairs (e.g. Joe=Kore,Jane=Puck)."),
    ] = ()
    concurrency: Annotated[int, Meta(ge=1, le=1000, description="Requests at once.")] = 8
    timeout_s: Annotated[float, Meta(gt=0, le=600, description=FIRST_AUDIO_BUDGET)] = 3.0

    def __post_init__(self) -> None:
        # Ends like msgspec's own messages, so the settings loader names the option.
        if len(self.speakers) not in (0, 2) or any("=" not in pair for pair in self.speakers):
            raise ValueError("give exactly two Speaker=Voice pairs - at `$.speakers`")


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


def _snake_keys(value: Any) -> Any:
    """Keys (never values: voice names keep their case) from camelCase to snake_case."""
    if isinstance(value, dict):
        return {snake_case(key): _snake_keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_snake_keys(item) for item in value]
    return value


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
    def from_settings(
        cls, settings: GeminiSettings, shared: SharedHttpSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> GeminiProvider:
        if canonical_voice(settings.voice) is None:
            raise ValueError(f"gemini has no voice {settings.voice!r} - at `$.gemini_voice`")
        if not settings.api_key:
            raise ValueError("gemini needs an API key - at `$.gemini_api_key`")
        base_url = settings.base_url.rstrip("/").removesuffix("/v1beta")
        http = HttpSettings.for_provider(
            settings, shared, base_url=base_url, model=settings.model.removeprefix("models/")
        )
        config = GeminiConfig(
            auth=resolve_auth(settings.auth, base_url),
            body_style=settings.body_style,
            streaming=settings.streaming,
            style=settings.style,
            temperature=settings.temperature,
            language_code=settings.language_code,
            speakers=parse_speakers(settings.speakers),
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
        events = sse_json_events(response, self.name) if is_sse else json_events(response, self.name)
        answer = Answer(self.name)
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


SPEC = ProviderSpec(
    name=GeminiProvider.name,
    capabilities={"streaming": "SSE (streamGenerateContent)", "local": False, "timestamps": []},
    settings_type=GeminiSettings,
    build=GeminiProvider.from_settings,
    default_voice=configured_voice,
)
