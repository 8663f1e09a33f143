"""A stream's life between the transport and the providers, independent of the transport."""

from .options import StreamOptions, config_from_query, ready_message, resolve_options
from .stream import STREAM_DONE, OutItem, StreamLimits, StreamSession

__all__ = [
    "STREAM_DONE",
    "OutItem",
    "StreamLimits",
    "StreamOptions",
    "StreamSession",
    "config_from_query",
    "ready_message",
    "resolve_options",
]
