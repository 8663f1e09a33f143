"""The WebSocket protocol's messages (docs/protocol.md), as msgspec Structs tagged by `type`.

A copy, not an import: this client is used where the server's package is not installed. Server
messages ignore fields they do not know, so a newer server with more fields still decodes.

The telephony bridge (`clients.telephony.upstream`) speaks the protocol with these too: keep this
module's imports to msgspec, so the bridge does not pull in what the rest of this client needs.
"""

from __future__ import annotations

import msgspec

# -- client → server ---------------------------------------------------------------------------


class _ClientMessage(msgspec.Struct, tag_field="type", omit_defaults=True):
    pass


class Config(_ClientMessage, tag="config", kw_only=True):
    """Stream settings, sent as the first message; absent fields keep the server's defaults."""

    provider: str | None = None
    voice: str | None = None
    format: str | None = None
    sample_rate: int | None = None
    frame_ms: int | None = None
    speed: float | None = None
    language: str | None = None
    eager_first_segment: int | None = None
    boundary_timeout_ms: int | None = None
    max_lead_ms: int | None = None

    def is_empty(self) -> bool:
        return all(getattr(self, name) is None for name in self.__struct_fields__)


class Text(_ClientMessage, tag="text"):
    text: str


class Flush(_ClientMessage, tag="flush"):
    pass


class Cancel(_ClientMessage, tag="cancel"):
    played_ms: float | None = None
    """The client's playback position on the stream's timeline: `cancelled` names the last word heard."""


class End(_ClientMessage, tag="end"):
    pass


ClientMessage = Config | Text | Flush | Cancel | End

# -- server → client ---------------------------------------------------------------------------


class _ServerMessage(msgspec.Struct, tag_field="type", kw_only=True):
    received_at: float = 0.0
    """Not on the wire: `time.monotonic()` when this client received the message."""


class Ready(_ServerMessage, tag="ready", kw_only=True):
    """The stream's effective settings."""

    provider: str
    voice: str
    format: str
    sample_rate: int
    channels: int = 1
    frame_ms: int
    speed: float
    mime: str = ""
    language: str = ""
    max_segment_chars: int = 0
    max_lead_ms: int = 0


class SegmentStart(_ServerMessage, tag="segment", kw_only=True):
    """Segment `seq` (normally a sentence) starts; its audio follows."""

    seq: int
    text: str
    text_sent_at: float | None = None
    """Not on the wire: `time.monotonic()` when this client sent the segment's last character
    (None if its text could not be found in what was sent, e.g. markup the server rewrote)."""


class SegmentEnd(_ServerMessage, tag="segment_end", kw_only=True):
    seq: int
    audio_ms: float


class AlignedWord(msgspec.Struct, kw_only=True):
    text: str
    start_ms: float
    end_ms: float
    char_start: int | None = None
    char_end: int | None = None
    seq: int | None = None
    """In `cancelled` only: the word's segment."""


class Alignment(_ServerMessage, tag="alignment", kw_only=True):
    """With `timestamps`: when the words of segment `seq` are heard, on the stream's timeline."""

    seq: int
    words: list[AlignedWord]


class Cancelled(_ServerMessage, tag="cancelled", kw_only=True):
    """Answers `cancel`: everything after it comes from text sent after the cancel."""

    audio_ms: float | None = None
    last_sent: AlignedWord | None = None
    last_heard: AlignedWord | None = None


class Done(_ServerMessage, tag="done", kw_only=True):
    """Statistics of the whole stream; the server closes the connection next."""

    segments: int
    audio_ms: float
    text_chars: int
    elapsed_ms: float
    ttfa_ms: float | None = None
    provider_ms: float | None = None


class Error(_ServerMessage, tag="error", kw_only=True):
    code: str
    message: str
    seq: int | None = None


class Warning(_ServerMessage, tag="warning", kw_only=True):  # the protocol's name, shadowing the builtin
    """Something went wrong and was handled (e.g. a fallback provider took over segment `seq`)."""

    code: str
    message: str
    seq: int | None = None


ServerMessage = Ready | SegmentStart | SegmentEnd | Alignment | Cancelled | Done | Error | Warning

_SERVER_TAGS = frozenset(str(kind.__struct_config__.tag) for kind in ServerMessage.__args__)
_encoder = msgspec.json.Encoder()
_decoder: msgspec.json.Decoder[ServerMessage] = msgspec.json.Decoder(ServerMessage)


class _AnyType(msgspec.Struct):
    type: str = ""


_type_decoder = msgspec.json.Decoder(_AnyType)


def encode(message: ClientMessage) -> str:
    return _encoder.encode(message).decode()


def decode(data: str | bytes) -> ServerMessage | None:
    """A server message, or None for a message type this client does not know (a newer server).

    Raises msgspec.DecodeError when a known message is malformed.
    """
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError:
        if _type_decoder.decode(data).type not in _SERVER_TAGS:
            return None
        raise


class AudioChunk(msgspec.Struct, frozen=True, kw_only=True):
    """One binary frame of audio, in the format of `Ready.format`; not a JSON message."""

    data: bytes
    seq: int | None
    """The segment the frame belongs to (None for a container's trailer after the last segment)."""
    received_at: float


Event = AudioChunk | Ready | SegmentStart | SegmentEnd | Alignment | Cancelled | Done | Error | Warning
"""What iterating a stream yields."""
