"""Twilio Media Streams messages (bidirectional `<Connect><Stream>`), as msgspec Structs.

Every message is a JSON object in a WebSocket *text* frame, tagged by `event`. Twilio sends
`connected`, `start`, `media` (the caller's audio), `mark` (echo of ours), `dtmf` and `stop`; we
send `media` (audio to play), `mark` (echoed when playback reaches it) and `clear` (empty
Twilio's playback buffer; pending marks are echoed). Twilio may add fields, so inbound Structs
ignore unknown ones; outbound Structs carry exactly the fields Twilio documents.
"""

from __future__ import annotations

import base64

import msgspec

SAMPLE_RATE = 8000
FRAME_MS = 20
FRAME_BYTES = SAMPLE_RATE * FRAME_MS // 1000
"""One 20 ms frame of 8 kHz μ-law: one byte a sample."""
MULAW_SILENCE = 0xFF
"""μ-law code of a zero sample (the positive-zero code), used to pad a segment's last frame."""
MULAW_ENCODING = "audio/x-mulaw"


class MediaFormat(msgspec.Struct, rename="camel"):
    encoding: str
    sample_rate: int
    channels: int

    def problem(self) -> str | None:
        """Why we cannot play into this stream, or None when it is 8 kHz mono μ-law."""
        if (self.encoding, self.sample_rate, self.channels) != (MULAW_ENCODING, SAMPLE_RATE, 1):
            return (
                f"mediaFormat {self.encoding} {self.sample_rate} Hz {self.channels} channel(s) is not "
                f"{MULAW_ENCODING} {SAMPLE_RATE} Hz mono"
            )
        return None


class StartInfo(msgspec.Struct, rename="camel"):
    stream_sid: str
    call_sid: str
    media_format: MediaFormat
    account_sid: str = ""
    tracks: list[str] = msgspec.field(default_factory=list)
    custom_parameters: dict[str, str] = msgspec.field(default_factory=dict)


class MediaPayload(msgspec.Struct):
    payload: str
    track: str = "inbound"


class MarkName(msgspec.Struct):
    name: str


class DtmfDigit(msgspec.Struct):
    digit: str
    track: str = "inbound_track"


class _Inbound(msgspec.Struct, tag_field="event", rename="camel"):
    pass


class Connected(_Inbound, tag="connected"):
    protocol: str = "Call"
    version: str = ""


class Start(_Inbound, tag="start"):
    start: StartInfo
    stream_sid: str = ""


class InboundMedia(_Inbound, tag="media"):
    media: MediaPayload
    stream_sid: str = ""


class InboundMark(_Inbound, tag="mark"):
    mark: MarkName
    stream_sid: str = ""


class Dtmf(_Inbound, tag="dtmf"):
    dtmf: DtmfDigit
    stream_sid: str = ""


class Stop(_Inbound, tag="stop"):
    stream_sid: str = ""


InboundMessage = Connected | Start | InboundMedia | InboundMark | Dtmf | Stop


class OutboundPayload(msgspec.Struct, forbid_unknown_fields=True):
    payload: str


class _Outbound(msgspec.Struct, tag_field="event", rename="camel", forbid_unknown_fields=True):
    stream_sid: str


class Media(_Outbound, tag="media"):
    media: OutboundPayload


class Mark(_Outbound, tag="mark"):
    mark: MarkName


class Clear(_Outbound, tag="clear"):
    pass


OutboundMessage = Media | Mark | Clear

_inbound_decoder: msgspec.json.Decoder[InboundMessage] = msgspec.json.Decoder(InboundMessage)
_outbound_decoder: msgspec.json.Decoder[OutboundMessage] = msgspec.json.Decoder(OutboundMessage)
_encoder = msgspec.json.Encoder()


def decode_inbound(data: str | bytes) -> InboundMessage:
    """Raises msgspec.DecodeError for malformed JSON and for events we do not know."""
    return _inbound_decoder.decode(data)


def decode_outbound(data: str | bytes) -> OutboundMessage:
    return _outbound_decoder.decode(data)


def encode(message: InboundMessage | OutboundMessage) -> str:
    return _encoder.encode(message).decode()


def media_message(stream_sid: str, frame: bytes) -> str:
    return encode(Media(stream_sid, OutboundPayload(base64.b64encode(frame).decode("ascii"))))
