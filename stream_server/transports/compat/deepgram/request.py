"""A Deepgram `/v1/speak` request's query parameters, as this server's stream options (sans I/O).

`model` names a Deepgram voice (`aura-2-thalia-en`): `--deepgram-voice-map` maps models to this
server's voices (`aura-2-thalia-en=piper:en_US-joe-medium`); any other `aura-*` model gets the
default provider and voice; a `provider` or `provider:voice` of this server is taken as is;
anything else is refused, as Deepgram refuses a model it does not have. `encoding`,
`sample_rate` and `container` choose the audio format, within what this server encodes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ....protocol import Config
from ....providers import Provider
from ....settings import Settings
from ..voice_map import voice_map

DEFAULT_MODEL = "aura-asteria-en"
"""Deepgram's own default, when a request names no model."""
AURA_PREFIX = "aura-"
INVALID_QUERY = "INVALID_QUERY_PARAMETER"
# Deepgram's own rates per encoding, and its defaults; this server offers those its formats have.
_DEFAULT_RATE = {"linear16": 24000, "mulaw": 8000, "alaw": 8000, "mp3": 22050, "opus": 48000, "flac": 48000, "aac": 22050}
SOCKET_ENCODINGS = ("linear16", "mulaw", "alaw")
REST_ENCODINGS = (*SOCKET_ENCODINGS, "mp3", "opus", "flac", "aac")
# (encoding, container) -> this server's format. The WebSocket sends raw audio only (container none).
_FORMATS = {
    ("linear16", "none"): "pcm",
    ("linear16", "wav"): "wav",
    ("mulaw", "none"): "mulaw",
    ("alaw", "none"): "alaw",
    ("mp3", "none"): "mp3",
    ("opus", "ogg"): "ogg_opus",
    ("flac", "none"): "flac",
    ("aac", "none"): "aac",
}
_DEFAULT_CONTAINER = {"linear16": "wav", "mulaw": "wav", "alaw": "wav", "opus": "ogg"}
# Deepgram parameters that change nothing here: accepted, so that clients sending them work.
IGNORED = frozenset({"mip_opt_out", "tag", "bit_rate"})
_TAKEN = frozenset({"model", "encoding", "sample_rate", "container", "speed"})
_MIN_SPEED, _MAX_SPEED = 0.25, 4.0


class Refused(Exception):
    """A request Deepgram's way of saying no: an HTTP status, `err_code` and `err_msg`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def body(self, request_id: str) -> dict[str, str]:
        return {"err_code": self.code, "err_msg": self.message, "request_id": request_id}


@dataclass(frozen=True, slots=True)
class SpeakRequest:
    model: str
    """The model as the client named it (echoed in `Metadata`)."""
    config: Config


def speak_request(
    query: Mapping[str, str], settings: Settings, providers: Mapping[str, Provider], *, socket: bool
) -> SpeakRequest:
    """The stream options a `/v1/speak` URL asks for. Raises `Refused` (400)."""
    unknown = sorted(set(query) - _TAKEN - IGNORED)
    if unknown:
        raise Refused(400, INVALID_QUERY, f"unknown query parameter {unknown[0][:40]!r}")
    model = query.get("model") or DEFAULT_MODEL
    provider, voice = resolve_model(model, settings, providers)
    encodings = SOCKET_ENCODINGS if socket else REST_ENCODINGS
    encoding = query.get("encoding") or ("linear16" if socket else "mp3")
    if encoding not in encodings:
        raise Refused(400, INVALID_QUERY, f"encoding {encoding[:40]!r} is not offered; use one of {', '.join(encodings)}")
    container = query.get("container") or ("none" if socket else _DEFAULT_CONTAINER.get(encoding, "none"))
    fmt = _FORMATS.get((encoding, container))
    if fmt is None or (socket and container != "none"):
        raise Refused(400, INVALID_QUERY, f"container {container[:20]!r} is not offered for {encoding}")
    return SpeakRequest(
        model=model,
        config=Config(
            provider=provider,
            voice=voice,
            format=fmt,
            sample_rate=_number(query, "sample_rate", int) or _DEFAULT_RATE[encoding],
            speed=_speed(query),
        ),
    )


def resolve_model(model: str, settings: Settings, providers: Mapping[str, Provider]) -> tuple[str | None, str | None]:
    """(provider, voice) for a Deepgram model name; None: the server's default. Raises `Refused`."""
    mapped = voice_map(settings.deepgram_voice_map).get(model)
    if mapped is not None:
        return mapped
    if model.startswith(AURA_PREFIX):
        return None, None
    provider, _, voice = model.partition(":")
    if provider in providers:
        return provider, voice or None
    raise Refused(
        400,
        INVALID_QUERY,
        f"no model {model[:60]!r}: use an aura-* model (mapped with --deepgram-voice-map), "
        f"or one of this server's providers ({', '.join(sorted(providers))}) as provider[:voice]",
    )


def _number(query: Mapping[str, str], name: str, kind: type[int] | type[float]) -> float | None:
    raw = query.get(name)
    if not raw:
        return None
    try:
        return kind(raw)
    except ValueError:
        raise Refused(400, INVALID_QUERY, f"{name} must be a number, not {raw[:20]!r}") from None


def _speed(query: Mapping[str, str]) -> float | None:
    speed = _number(query, "speed", float)
    if speed is not None and not _MIN_SPEED <= speed <= _MAX_SPEED:
        raise Refused(400, INVALID_QUERY, f"speed must be between {_MIN_SPEED} and {_MAX_SPEED}")
    return speed
