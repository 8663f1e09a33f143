"""Strict checks on what a bridge sends to Twilio, as an emulated Twilio applies them.

Twilio's bidirectional Media Streams take JSON text frames only: `media` with a base64 payload of
headerless 8 kHz μ-law, `mark` and `clear`, each naming the stream. Anything else (a binary frame,
a WAV header, a payload that is not exactly one 20 ms frame, another stream's sid) fails here.
"""

from __future__ import annotations

import base64
import binascii

import msgspec

from .twilio_protocol import FRAME_BYTES, Clear, Mark, Media, OutboundMessage, decode_outbound

# Signatures of a container header that must never appear inside raw μ-law.
HEADER_SIGNATURES = (b"RIFF", b"WAVE", b"fmt ")
_TAIL = max(len(s) for s in HEADER_SIGNATURES) - 1


class TwilioViolation(AssertionError):
    """A message Twilio would reject or play wrongly."""


class OutboundChecker:
    def __init__(self, stream_sid: str) -> None:
        self.stream_sid = stream_sid
        self._tail = b""  # the end of the previous payload: a header could straddle two frames

    def check(self, data: str | bytes) -> tuple[OutboundMessage, bytes]:
        """The message and its decoded audio (b"" for `mark`/`clear`); raises TwilioViolation."""
        if isinstance(data, bytes):
            raise TwilioViolation(f"binary frame of {len(data)} bytes: Twilio accepts JSON text frames only")
        try:
            message = decode_outbound(data)
        except msgspec.DecodeError as exc:
            raise TwilioViolation(f"not a Twilio media/mark/clear message ({exc}): {data[:200]!r}") from None
        if message.stream_sid != self.stream_sid:
            raise TwilioViolation(f"streamSid {message.stream_sid!r}, expected {self.stream_sid!r}")
        if isinstance(message, Mark) and not message.mark.name:
            raise TwilioViolation("mark without a name")
        if not isinstance(message, Media):
            assert isinstance(message, Mark | Clear)
            return message, b""
        try:
            audio = base64.b64decode(message.media.payload, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise TwilioViolation(f"payload is not base64: {exc}") from None
        if len(audio) != FRAME_BYTES:
            raise TwilioViolation(f"payload of {len(audio)} bytes, expected {FRAME_BYTES} (20 ms of 8 kHz μ-law)")
        window = self._tail + audio
        for signature in HEADER_SIGNATURES:
            if signature in window:
                raise TwilioViolation(f"{signature!r} in the audio: a container header, not raw μ-law")
        self._tail = audio[-_TAIL:]
        return message, audio
