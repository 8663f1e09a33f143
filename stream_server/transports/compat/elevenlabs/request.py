"""An ElevenLabs request's voice, model and query, as this server's stream options (sans I/O).

`voice_id` names the voice: `--elevenlabs-voice-map` maps ElevenLabs voice ids to this server's
voices (`21m00Tcm4TlvDq8ikWAM=piper:en_US-joe-medium`); a voice of this server is taken as is,
`provider:voice` or a voice of the default provider. `model_id` names the provider: any
`eleven_*` model keeps the voice's provider (or the default one); a provider of this server is
taken as is. Anything else is refused, as ElevenLabs refuses a voice or model it does not have
(`voice_not_found`, `model_not_found`). `output_format` chooses the audio format within what
this server encodes (the bitrate of `mp3_*` and `opus_*` is the encoder's own).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ....protocol import Config
from ....providers import Provider
from ....settings import Settings
from ..voice_map import voice_map

DEFAULT_MODEL = "eleven_flash_v2_5"
MODEL_PREFIX = "eleven_"
DEFAULT_OUTPUT_FORMAT = "mp3_44100_128"
DEFAULT_INACTIVITY_S = 20.0
MAX_INACTIVITY_S = 180.0
MIN_SPEED, MAX_SPEED = 0.7, 1.2
"""ElevenLabs' own range for `voice_settings.speed`."""
# ElevenLabs parameters that change nothing here: accepted, so that clients sending them work.
IGNORED = frozenset({
    "enable_logging", "enable_ssml_parsing", "optimize_streaming_latency", "apply_text_normalization",
    "apply_language_text_normalization", "seed", "language_code",
})  # fmt: skip
SOCKET_QUERY = frozenset({"model_id", "output_format", "inactivity_timeout", "sync_alignment", "auto_mode"})
REST_QUERY = frozenset({"output_format"})
# ElevenLabs' output formats: codec -> this server's format, and the rates each is offered at.
_CODECS = {
    "pcm": ("pcm", None),
    "ulaw": ("mulaw", (8000,)),
    "alaw": ("alaw", (8000,)),
    "mp3": ("mp3", (22050, 24000, 44100)),
    "opus": ("ogg_opus", (48000,)),
}
_PCM_RATES = (8000, 16000, 22050, 24000, 44100, 48000)
"""ElevenLabs also has pcm_32000, which this server does not encode."""


class Refused(Exception):
    """A request ElevenLabs' way of saying no: an HTTP status and `detail` {status, message}; on
    a socket the close code and the error message {message, error, code}."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def body(self) -> dict[str, object]:
        return {"detail": {"status": self.code, "message": self.message}}


def invalid(message: str) -> Refused:
    return Refused(400, "invalid_request", message)


@dataclass(frozen=True, slots=True)
class SpeechRequest:
    voice_id: str
    model_id: str
    config: Config
    inactivity_timeout_s: float
    """A context with no message for this long is closed (`inactivity_timeout`)."""


def speech_request(
    voice_id: str, query: Mapping[str, str], settings: Settings, providers: Mapping[str, Provider],
    *, socket: bool, model_id: str | None = None,
) -> SpeechRequest:  # fmt: skip
    """The stream options an ElevenLabs URL asks for (on a socket the model is in the query; in
    the REST call, the body's `model_id`). Raises `Refused`."""
    unknown = sorted(set(query) - (SOCKET_QUERY if socket else REST_QUERY) - IGNORED)
    if unknown:
        raise invalid(f"unknown query parameter {unknown[0][:40]!r}")
    model = (query.get("model_id") if socket else model_id) or DEFAULT_MODEL
    provider, voice = resolve_voice(voice_id, model, settings, providers)
    fmt, rate = output_format(query.get("output_format") or DEFAULT_OUTPUT_FORMAT)
    for flag in ("sync_alignment", "auto_mode"):
        if query.get(flag, "false").lower() not in ("true", "false"):
            raise invalid(f"{flag} must be true or false")
    return SpeechRequest(
        voice_id=voice_id,
        model_id=model,
        # ElevenLabs' sockets time each character of the audio they send (`alignment`).
        config=Config(provider=provider, voice=voice, format=fmt, sample_rate=rate, timestamps="char" if socket else None),
        inactivity_timeout_s=_inactivity(query.get("inactivity_timeout")),
    )


def resolve_voice(
    voice_id: str, model_id: str, settings: Settings, providers: Mapping[str, Provider]
) -> tuple[str | None, str | None]:
    """(provider, voice) for an ElevenLabs voice and model; None: the server's default."""
    model_provider = _model_provider(model_id, providers)
    mapped = voice_map(settings.elevenlabs_voice_map).get(voice_id)
    if mapped is not None:
        provider, voice = mapped
    else:
        named, _, voice_name = voice_id.rpartition(":")
        provider = named or model_provider or settings.provider
        voice = voice_name
        known = providers.get(provider)
        if known is None or all(v.id != voice for v in known.voices):
            raise Refused(
                404, "voice_not_found",
                f"no voice {voice_id[:60]!r}: use a voice of this server (GET /v1/voices) as voice or provider:voice, "
                "or map ElevenLabs voice ids with --elevenlabs-voice-map",
            )  # fmt: skip
    if model_provider is not None and provider is not None and model_provider != provider:
        raise invalid(f"model_id {model_id[:40]!r} names provider {model_provider!r}, the voice is {provider!r}'s")
    return provider or model_provider, voice


def _model_provider(model_id: str, providers: Mapping[str, Provider]) -> str | None:
    if model_id.startswith(MODEL_PREFIX):
        return None
    if model_id in providers:
        return model_id
    raise Refused(
        400, "model_not_found",
        f"no model {model_id[:60]!r}: use an eleven_* model, or one of this server's providers "
        f"({', '.join(sorted(providers))})",
    )  # fmt: skip


def output_format(name: str) -> tuple[str, int]:
    """This server's (format, sample rate) for an ElevenLabs `output_format`
    (`pcm_24000`, `ulaw_8000`, `mp3_44100_128`, `opus_48000_64`). Raises `Refused`."""
    codec, _, rest = name.partition("_")
    rate_text = rest.partition("_")[0]
    known = _CODECS.get(codec)
    rates = _PCM_RATES if known is not None and known[1] is None else (known[1] if known else ())
    if known is None or not rate_text.isdigit() or int(rate_text) not in rates:
        raise invalid(
            f"output_format {name[:40]!r} is not offered: use pcm_{{{','.join(map(str, _PCM_RATES))}}}, "
            "ulaw_8000, alaw_8000, mp3_22050_*, mp3_24000_*, mp3_44100_*, opus_48000_*"
        )
    return known[0], int(rate_text)


def voice_speed(speed: float | None) -> float | None:
    """`voice_settings.speed`, checked against ElevenLabs' range. Raises `Refused`."""
    if speed is not None and not MIN_SPEED <= speed <= MAX_SPEED:
        raise invalid(f"voice_settings.speed must be between {MIN_SPEED} and {MAX_SPEED}")
    return speed


def _inactivity(raw: str | None) -> float:
    if not raw:
        return DEFAULT_INACTIVITY_S
    try:
        value = float(raw)
    except ValueError:
        raise invalid(f"inactivity_timeout must be a number of seconds, not {raw[:20]!r}") from None
    if value <= 0:
        raise invalid("inactivity_timeout must be a positive number of seconds")
    return min(value, MAX_INACTIVITY_S)  # LiveKit asks for 300 s; ElevenLabs keeps to its maximum
