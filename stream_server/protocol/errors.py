"""Stable error codes. Clients branch on `code`; `message` is for humans and may change."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    BAD_MESSAGE = "bad_message"
    """Not JSON, not an object, an unknown `type`, a missing or mistyped field."""
    MESSAGE_TOO_LARGE = "message_too_large"
    """Over `max_message_bytes`; the connection is closed with 1009 after this error."""
    UNKNOWN_PROVIDER = "unknown_provider"
    UNKNOWN_VOICE = "unknown_voice"
    UNSUPPORTED_FORMAT = "unsupported_format"
    UNSUPPORTED_SAMPLE_RATE = "unsupported_sample_rate"
    BAD_FRAME_MS = "bad_frame_ms"
    CONFIG_TOO_LATE = "config_too_late"
    """`config` is only accepted as the first message of a connection."""
    STREAM_ENDED = "stream_ended"
    """Text or flush after `end`."""
    PENDING_TEXT_LIMIT = "pending_text_limit"
    """The stream already holds `max_pending_chars` of text not yet synthesized; the text was dropped."""
    PROVIDER_ERROR = "provider_error"
    """Synthesis of one segment failed; that segment's `seq` is given and later segments go on."""
    INTERNAL_ERROR = "internal_error"


class ProtocolError(Exception):
    """A client mistake that is answered with an `error` message; the connection stays usable."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
