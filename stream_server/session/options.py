"""A stream's effective options: what the client asked for, over the server's defaults, validated."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import msgspec

from ..audio.formats import FORMATS, PCM_RATES, OutputFormat, get_format
from ..protocol import Config, ErrorCode, ProtocolError, Ready
from ..providers.base import Provider
from ..providers.registry import CAPABILITIES as PROVIDER_CAPABILITIES
from ..settings import Settings, setting_error

# Where a voice's own rate is not an offered pcm rate, pcm falls back to this one.
FALLBACK_PCM_RATE = 24000
# 20 ms is valid for every format at every offered rate.
FALLBACK_FRAME_MS = 20


@dataclass(frozen=True, slots=True)
class StreamOptions:
    provider: str
    voice: str
    format: OutputFormat
    sample_rate: int
    frame_ms: int
    speed: float
    language: str = "en"
    eager_first_segment: int = 0
    boundary_timeout_ms: int = 150
    max_segment_chars: int = 300
    max_segment_bytes: int | None = None
    max_lead_ms: int = 1500
    channels: int = 1
    idle_timeout_s: float = 30.0
    max_stream_s: float = 3600.0
    emoji: str = "skip"
    """"skip": emoji are taken out of the provider's text; "read": left in."""
    timestamps: str = "none"
    """"word", "char" or "none": which `alignment` messages the client gets."""
    provider_timestamps: bool = False
    """The provider gives word timings (its `timestamps` capability)."""


def config_from_query(params: Mapping[str, str]) -> Config:
    """The URL's query parameters, read as a `config` message (strings converted to numbers)."""
    if "context" in params:  # a message's field, naming one of a socket's contexts: no setting
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "query parameters: `context` is a field of messages, not of the URL")
    try:
        return msgspec.convert({"type": "config", **params}, Config, strict=False)
    except msgspec.ValidationError as exc:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"query parameters: {exc}") from None


def check_defaults(settings: Settings) -> None:
    """The server's default format must take its default sample rate and frame duration.

    Run where the server loads its settings, so a bad default stops it at start-up with a
    `SettingsError` naming the option (--format, --sample-rate, --frame-ms), not on every stream.
    """
    fmt = get_format(settings.format)
    if fmt is None:  # the settings' type admits only known names; this catches hand-built settings
        raise setting_error("format", f"unsupported format {settings.format!r}; available: {sorted(FORMATS)}")
    if settings.sample_rate is not None and settings.sample_rate not in PCM_RATES:
        raise setting_error("sample_rate", f"pcm is offered at {list(PCM_RATES)} Hz, not {settings.sample_rate}")
    rate = settings.sample_rate if settings.sample_rate in fmt.sample_rates else fmt.sample_rates[0]
    problem = fmt.frame_ms_error(rate, settings.frame_ms)
    if problem:
        raise setting_error("frame_ms", problem)


def resolve_options(
    requested: Config, settings: Settings, providers: Mapping[str, Provider]
) -> StreamOptions:
    provider_name = requested.provider or settings.provider
    provider = providers.get(provider_name)
    if provider is None:
        raise ProtocolError(
            ErrorCode.UNKNOWN_PROVIDER,
            f"unknown provider {provider_name!r}; available: {sorted(providers)}",
        )

    voices = {v.id: v for v in provider.voices}
    # The server-wide default voice belongs to the server-wide default provider only.
    default_voice = settings.voice if provider_name == settings.provider else None
    voice_id = requested.voice or default_voice or next(iter(voices))
    voice = voices.get(voice_id)
    if voice is None:
        raise ProtocolError(
            ErrorCode.UNKNOWN_VOICE,
            f"provider {provider_name!r} has no voice {voice_id!r}; available: {sorted(voices)}",
        )

    format_name = requested.format or settings.format
    fmt = get_format(format_name)
    if fmt is None:
        raise ProtocolError(
            ErrorCode.UNSUPPORTED_FORMAT,
            f"unsupported format {format_name!r}; available: {sorted(FORMATS)}",
        )

    sample_rate = requested.sample_rate or settings.sample_rate
    if sample_rate is None or (requested.sample_rate is None and sample_rate not in fmt.sample_rates):
        sample_rate = _default_rate(fmt, voice.sample_rate)
    if sample_rate not in fmt.sample_rates:
        raise ProtocolError(
            ErrorCode.UNSUPPORTED_SAMPLE_RATE,
            f"{fmt.name} is offered at {list(fmt.sample_rates)} Hz, not {sample_rate}",
        )

    frame_ms = requested.frame_ms or settings.frame_ms
    if requested.frame_ms is None and fmt.frame_ms_error(sample_rate, frame_ms):
        # The server default suits the default format; this format falls back to its own.
        frame_ms = FALLBACK_FRAME_MS
    problem = fmt.frame_ms_error(sample_rate, frame_ms)
    if problem:
        raise ProtocolError(ErrorCode.BAD_FRAME_MS, problem)

    speed = requested.speed if requested.speed is not None else 1.0
    return StreamOptions(
        provider=provider_name,
        voice=voice.id,
        format=fmt,
        sample_rate=sample_rate,
        frame_ms=frame_ms,
        speed=speed,
        language=requested.language or settings.language or voice.language,
        eager_first_segment=_first_given(requested.eager_first_segment, settings.eager_first_segment),
        boundary_timeout_ms=_first_given(requested.boundary_timeout_ms, settings.boundary_timeout_ms),
        # A provider's own request limit caps the server's segment length.
        max_segment_chars=min(settings.max_segment_chars, provider.max_chars or settings.max_segment_chars),
        max_segment_bytes=provider.max_bytes,
        max_lead_ms=_first_given(requested.max_lead_ms, settings.max_lead_ms),
        idle_timeout_s=settings.idle_timeout_s,
        max_stream_s=settings.max_stream_s,
        emoji=requested.emoji or "skip",
        timestamps=requested.timestamps or "none",
        provider_timestamps=bool(PROVIDER_CAPABILITIES.get(provider_name, {}).get("timestamps")),
    )


def ready_message(options: StreamOptions) -> Ready:
    """The `ready` message that tells a client its stream's effective options."""
    return Ready(
        provider=options.provider,
        voice=options.voice,
        format=options.format.name,
        mime=options.format.mime,
        sample_rate=options.sample_rate,
        channels=options.channels,
        frame_ms=options.frame_ms,
        speed=options.speed,
        language=options.language,
        eager_first_segment=options.eager_first_segment,
        boundary_timeout_ms=options.boundary_timeout_ms,
        max_segment_chars=options.max_segment_chars,
        max_lead_ms=options.max_lead_ms,
        max_segment_bytes=options.max_segment_bytes,
        idle_timeout_s=options.idle_timeout_s,
        max_stream_s=options.max_stream_s,
        emoji=options.emoji,
        timestamps=options.timestamps,
    )


def _first_given(value: int | None, default: int) -> int:
    return default if value is None else value


def _default_rate(fmt: OutputFormat, voice_rate: int) -> int:
    if voice_rate in fmt.sample_rates:
        return voice_rate
    if FALLBACK_PCM_RATE in fmt.sample_rates:
        return FALLBACK_PCM_RATE
    return fmt.sample_rates[0]
