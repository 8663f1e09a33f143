"""Stable error codes. Clients branch on `code`; `message` is for humans and may change."""

from __future__ import annotations

import math
from enum import StrEnum


class ErrorCode(StrEnum):
    BAD_MESSAGE = "bad_message"
    """Not JSON, not an object, an unknown `type`, a missing or mistyped field."""
    EMPTY_INPUT = "empty_input"
    """`POST /v1/audio/speech`: `input` has nothing to speak (only whitespace)."""
    MESSAGE_TOO_LARGE = "message_too_large"
    """Over `max_message_bytes`; the connection is closed with 1009 after this error."""
    UNKNOWN_PROVIDER = "unknown_provider"
    UNKNOWN_VOICE = "unknown_voice"
    UNSUPPORTED_FORMAT = "unsupported_format"
    UNSUPPORTED_SAMPLE_RATE = "unsupported_sample_rate"
    BAD_FRAME_MS = "bad_frame_ms"
    CONFIG_TOO_LATE = "config_too_late"
    """`config` is only accepted as the first message of a connection."""
    NOT_CONFIGURED = "not_configured"
    """`text`, `flush` or `end` after a refused `config`, until a valid `config` arrives."""
    STREAM_ENDED = "stream_ended"
    """Text or flush after `end`."""
    TOO_MANY_CONTEXTS = "too_many_contexts"
    """A new context past `--max-contexts` open on the socket: its message is dropped, the socket
    and its other contexts go on (the error names the refused context)."""
    UNKNOWN_CONTEXT = "unknown_context"
    """`flush`, `cancel` or `end` naming a context that is not open (never opened, or finished)."""
    PENDING_TEXT_LIMIT = "pending_text_limit"
    """The stream already holds `max_pending_chars` of text not yet synthesized; the text was dropped."""
    PROVIDER_ERROR = "provider_error"
    """Synthesis of one segment failed; that segment's `seq` is given and later segments go on."""
    PROVIDER_AUTH = "provider_auth"
    """The upstream refused the server's credentials (401/403): a configuration problem."""
    PROVIDER_REJECTED = "provider_rejected"
    """The upstream refused the request itself (400, 404, 413, 422): e.g. a voice it does not know."""
    PROVIDER_RATE_LIMITED = "provider_rate_limited"
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    """5xx, no connection, or the provider's circuit breaker is open after repeated failures."""
    PROVIDER_TIMEOUT = "provider_timeout"
    PROVIDER_BAD_RESPONSE = "provider_bad_response"
    """The upstream answered, but not with audio (or with audio that does not decode)."""
    PROVIDER_FALLBACK = "provider_fallback"
    """A `warning`: the stream's provider failed on a segment before any audio, and the next
    provider of the fallback chain synthesized it."""
    TIMESTAMPS_UNAVAILABLE = "timestamps_unavailable"
    """A `warning`, once per stream: it asked for `timestamps`, but its provider gives no word
    timings; the audio comes without `alignment` messages."""
    UNSUPPORTED_SCRIPT = "unsupported_script"
    """A `warning`, once per script in a stream: text in a script the stream's `language` is not
    written in (Chinese for an English voice), which its voice may read letter by letter."""
    SERVER_BUSY = "server_busy"
    """`--max-streams` streams are open already: try again later (WebSocket close 1013, HTTP 503)."""
    UNAUTHORIZED = "unauthorized"
    """No API key or token, or one the server does not know (HTTP 401; WebSocket handshake 401)."""
    FORBIDDEN_ORIGIN = "forbidden_origin"
    """A browser page from an origin outside `--allowed-origins` (HTTP 403; WebSocket handshake 403)."""
    RATE_LIMITED = "rate_limited"
    """The key used up its characters or new streams per minute; `retry_after_ms` says when to
    retry (HTTP 429 with Retry-After). On a WebSocket the refused text is dropped and the stream goes on."""
    TOO_MANY_STREAMS = "too_many_streams"
    """The key has `--key-max-streams` streams open already (HTTP 429, WebSocket close 1013)."""
    IDLE_TIMEOUT = "idle_timeout"
    """The stream waited `idle_timeout_s` (announced in `ready`) for text with nothing to send; it is closed."""
    STREAM_TOO_LONG = "stream_too_long"
    """The stream was open for `--max-stream-s`; it is closed."""
    SHUTTING_DOWN = "shutting_down"
    """The server is shutting down: new streams are refused (HTTP 503), running ones that outlast the
    grace period are closed (WebSocket close 1001)."""
    RESUME_UNAVAILABLE = "resume_unavailable"
    """SSE: the events after the client's `Last-Event-ID` are no longer kept; it continues live."""
    CLUSTER_UNAVAILABLE = "cluster_unavailable"
    """`--redis-url`: Redis, which holds the cluster's SSE sessions, does not answer: new sessions are
    refused (HTTP 503), readers get this `error` and their stream ends; retry when it is back."""
    SESSION_MOVED = "session_moved"
    """SSE session `warning` (`--redis-url`): the server running the session went away and another
    took it over; the segment being spoken restarts from its start, no accepted text is lost."""
    INTERNAL_ERROR = "internal_error"


class ProtocolError(Exception):
    """A client mistake that is answered with an `error` message; the connection stays usable."""

    def __init__(self, code: ErrorCode, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s
        """When the refused request may succeed again (rate limits)."""

    @property
    def retry_after_ms(self) -> int | None:
        return None if self.retry_after_s is None else max(1, math.ceil(self.retry_after_s * 1000))
