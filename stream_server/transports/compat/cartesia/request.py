"""A Cartesia generation request, as this server's stream options (sans I/O).

The same body shape serves the WebSocket's messages and `POST /tts/bytes` / `/tts/sse`:
`model_id`, `voice` {mode: id, id}, `output_format` {container, encoding, sample_rate},
`language`, `generation_config` {speed, volume, emotion}. `voice.id` names a Cartesia voice:
`--cartesia-voice-map` maps ids to this server's voices; any other UUID-shaped id (Cartesia's
voice ids) gets the default provider and voice; a `provider` or `provider:voice` of this server
is taken as is; anything else is refused, as Cartesia refuses a voice it does not have.
`model_id` is a Cartesia model (`sonic…`, which changes nothing here) or a provider of this server.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated

import msgspec
from msgspec import Meta, Struct

from ....protocol import Config
from ....providers import Provider
from ....settings import Settings
from ..voice_map import voice_map

SONIC_PREFIX = "sonic"
_UUID = re.compile(r"^[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}$")
# Cartesia's encodings -> this server's formats.
SOCKET_ENCODINGS = {"pcm_s16le": "pcm", "pcm_f32le": "f32", "pcm_mulaw": "mulaw", "pcm_alaw": "alaw"}
_WAV_ENCODINGS = ("pcm_s16le",)
_MIN_SPEED, _MAX_SPEED = 0.25, 4.0
MAX_BUFFER_DELAY_MS = 5000


class Refused(Exception):
    """A request Cartesia's way of saying no: an HTTP status (the `status_code` of an error
    message), a stable `error_code` and what to do instead."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    @property
    def title(self) -> str:
        return {400: "Invalid request", 401: "Unauthorized", 404: "Not found", 429: "Too many requests"}.get(
            self.status, "Error"
        )

    def body(self, context_id: str | None = None) -> dict[str, object]:
        """Cartesia's error fields: `title`/`message`/`error_code` (current API), `error` (older)."""
        body: dict[str, object] = {
            "title": self.title, "message": self.message, "error_code": self.code,
            "status_code": self.status, "error": self.message,
        }  # fmt: skip
        if context_id is not None:
            body["context_id"] = context_id
        return body


class Voice(Struct, forbid_unknown_fields=True, rename={"experimental_controls": "__experimental_controls"}):
    mode: str = "id"
    id: str | None = None
    embedding: list[float] | None = None
    experimental_controls: dict[str, object] | None = None
    """Older API versions' speed/emotion: accepted, not used."""


class OutputFormat(Struct, forbid_unknown_fields=True):
    container: str = "raw"
    encoding: str | None = None
    sample_rate: int | None = None
    bit_rate: int | None = None


class GenerationConfig(Struct, forbid_unknown_fields=True):
    speed: float | None = None
    volume: float | None = None
    emotion: str | list[str] | None = None


class Generation(Struct, forbid_unknown_fields=True, rename={"continue_": "continue"}):
    """Every field a generation request (or a WebSocket cancel) may carry; which are required is
    checked by who reads it (a context's first message needs more than its next ones)."""

    model_id: str | None = None
    transcript: str | None = None
    voice: Voice | None = None
    output_format: OutputFormat | None = None
    language: str | None = None
    generation_config: GenerationConfig | None = None
    context_id: Annotated[str, Meta(min_length=1, max_length=200)] | None = None
    continue_: bool = False
    flush: bool = False
    cancel: bool = False
    add_timestamps: bool = False
    add_phoneme_timestamps: bool = False
    use_normalized_timestamps: bool = False
    use_original_timestamps: bool = False
    max_buffer_delay_ms: Annotated[int, Meta(ge=0, le=MAX_BUFFER_DELAY_MS)] | None = None
    speed: str | float | None = None
    """Older API versions' speed ("slow", a -1..1 number): accepted, not used (`generation_config.speed` is)."""
    duration: float | None = None
    pronunciation_dict_id: str | None = None
    stream: bool | None = None


def generation_config(
    request: Generation, settings: Settings, providers: Mapping[str, Provider], *, containers: tuple[str, ...]
) -> Config:
    """The stream options a generation request asks for. Raises `Refused` (400)."""
    if request.output_format is None:
        raise Refused(400, "missing_output_format", "output_format is required: {container, encoding, sample_rate}")
    provider, voice = resolve_voice(request, settings, providers)
    return Config(
        provider=provider,
        voice=voice,
        format=_format(request.output_format, containers),
        sample_rate=request.output_format.sample_rate,
        speed=_speed(request),
        language=request.language or None,
        # The client cut the text itself (Pipecat's sentences): each transcript is spoken as sent.
        boundary_timeout_ms=None,
        # Word timings as `timestamps` messages (from voices that give them; phonemes: none).
        timestamps="word" if request.add_timestamps else None,
    )


def resolve_voice(
    request: Generation, settings: Settings, providers: Mapping[str, Provider]
) -> tuple[str | None, str | None]:
    """(provider, voice) for a request's `model_id` and `voice`; None: the server's default."""
    model = request.model_id or ""
    model_provider: str | None = None
    if model in providers:
        model_provider = model
    elif model and not model.startswith(SONIC_PREFIX):
        raise Refused(
            400, "model_not_found",
            f"no model {model[:60]!r}: use a sonic* model, or one of this server's providers ({', '.join(sorted(providers))})",
        )  # fmt: skip
    voice = request.voice or Voice()
    if voice.mode != "id":
        raise Refused(400, "unsupported_voice_mode", f"voice mode {voice.mode[:20]!r} is not offered; use {{mode: id, id}}")
    if not voice.id:
        return model_provider, None
    mapped = voice_map(settings.cartesia_voice_map).get(voice.id)
    if mapped is not None:
        return mapped
    if _UUID.match(voice.id):
        return model_provider, None
    provider, _, name = voice.id.partition(":")
    if provider in providers:
        return provider, name or None
    if model_provider is not None:
        return model_provider, voice.id
    raise Refused(
        404, "voice_not_found",
        f"no voice {voice.id[:60]!r}: use a Cartesia voice id (mapped with --cartesia-voice-map), "
        f"or one of this server's providers ({', '.join(sorted(providers))}) as provider[:voice]",
    )  # fmt: skip


def _format(output: OutputFormat, containers: tuple[str, ...]) -> str:
    if output.container not in containers:
        raise Refused(400, "unsupported_container", f"container {output.container[:20]!r} is not offered; use {', '.join(containers)}")
    if output.container == "mp3":
        return "mp3"
    encoding = output.encoding or ""
    fmt = SOCKET_ENCODINGS.get(encoding)
    if fmt is None:
        raise Refused(400, "unsupported_encoding", f"encoding {encoding[:20]!r} is not offered; use {', '.join(SOCKET_ENCODINGS)}")
    if output.container == "wav":
        if encoding not in _WAV_ENCODINGS:
            raise Refused(400, "unsupported_encoding", f"a wav container takes {', '.join(_WAV_ENCODINGS)} here")
        return "wav"
    return fmt


def _speed(request: Generation) -> float | None:
    speed = request.generation_config.speed if request.generation_config else None
    if speed is not None and not _MIN_SPEED <= speed <= _MAX_SPEED:
        raise Refused(400, "invalid_speed", f"generation_config.speed must be between {_MIN_SPEED} and {_MAX_SPEED}")
    return speed


def decode_generation(data: bytes | str) -> Generation:
    """A generation request's JSON. Raises `Refused` (400) for a wrong shape."""
    try:
        return _decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise Refused(400, "invalid_request", f"{exc}") from None
    except (msgspec.DecodeError, RecursionError) as exc:
        raise Refused(400, "invalid_json", f"not a JSON object ({str(exc)[:80]})") from None


_decoder = msgspec.json.Decoder(Generation)
