"""Python client of stream_server's WebSocket protocol (docs/protocol.md), and the `say` CLI.

Self-contained: it needs websockets and msgspec (and PyAV for `say --out FILE`), never the
server's package.

    from clients.python import connect, synthesize, synthesize_sync
"""

from .errors import (
    ConnectFailed,
    ConnectionLost,
    Forbidden,
    HandshakeRejected,
    InvalidServerUrl,
    ProtocolViolation,
    ServerError,
    StreamClientError,
    Unauthorized,
)
from .messages import (
    Alignment,
    AudioChunk,
    Cancelled,
    Config,
    Done,
    Error,
    Event,
    Ready,
    SegmentEnd,
    SegmentStart,
    Warning,
)
from .stream import DEFAULT_URL, Stream, StreamOptions, connect
from .synthesize import SegmentTiming, SynthesisResult, synthesize, synthesize_sync

__all__ = [
    "DEFAULT_URL",
    "Alignment",
    "AudioChunk",
    "Cancelled",
    "Config",
    "ConnectFailed",
    "ConnectionLost",
    "Done",
    "Error",
    "Event",
    "Forbidden",
    "HandshakeRejected",
    "InvalidServerUrl",
    "ProtocolViolation",
    "Ready",
    "SegmentEnd",
    "SegmentStart",
    "SegmentTiming",
    "ServerError",
    "Stream",
    "StreamClientError",
    "StreamOptions",
    "SynthesisResult",
    "Unauthorized",
    "Warning",
    "connect",
    "synthesize",
    "synthesize_sync",
]
