"""The WebSocket wire protocol, sans I/O: message types, their codec and the error codes."""

from .codec import decode_client_message, encode_server_message
from .errors import ErrorCode, ProtocolError
from .messages import (
    AlignedChar,
    AlignedWord,
    Alignment,
    Cancel,
    Cancelled,
    ClientMessage,
    Config,
    Done,
    End,
    Error,
    Flush,
    HeardWord,
    Ready,
    SegmentEnd,
    SegmentStart,
    ServerMessage,
    Text,
    Warning,
)

__all__ = [
    "AlignedChar",
    "AlignedWord",
    "Alignment",
    "Cancel",
    "Cancelled",
    "ClientMessage",
    "Config",
    "Done",
    "End",
    "Error",
    "ErrorCode",
    "Flush",
    "HeardWord",
    "ProtocolError",
    "Ready",
    "SegmentEnd",
    "SegmentStart",
    "ServerMessage",
    "Text",
    "Warning",
    "decode_client_message",
    "encode_server_message",
]
