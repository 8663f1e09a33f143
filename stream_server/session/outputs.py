"""What a stream sends, in order: the typed outputs every transport renders in its own wire format.

Audio frames are `EncodedFrame`s; the rest are the protocol's server messages, plus `Stopped`,
which says the server ended the stream early (after the `Error` that tells why). A transport
renders each output and nothing else: the order, the pacing and when a stream is over are the
stream core's (core.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..media import EncodedFrame
from ..protocol import Alignment, Cancelled, Done, Error, ProtocolError, Ready, SegmentEnd, SegmentStart, Warning
from .timeline import PendingAlignment


@dataclass(frozen=True, slots=True)
class Stopped:
    """The server ended the stream (idle, too long, shutting down, a message too large): the last
    output; the `Error` saying why came just before it."""

    reason: ProtocolError


@dataclass(frozen=True, slots=True)
class Relay:
    """A transport's own message, put in the control lane (`Stream.reply`) so that it goes out in
    order with the stream's other replies (a Deepgram `Flushed` due at once must not pass the
    `Cleared` of a barge-in before it); the stream hands it back to the transport as it is."""

    payload: object


Output = (
    EncodedFrame | Ready | SegmentStart | SegmentEnd | Alignment | Warning | Error | Cancelled | Done | Stopped | Relay
)
"""Everything a stream sends."""

Synthesized = EncodedFrame | SegmentStart | SegmentEnd | PendingAlignment | Warning | Error
"""What synthesis puts into a stream's ring, in order with the audio (a `PendingAlignment` goes
out as an `Alignment`, or not at all)."""
