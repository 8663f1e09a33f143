"""The stream's output as Server-Sent Events, sans I/O.

Every event has an `id:` (1, 2, 3... per stream) so a client can resume with `Last-Event-ID`.
Event names are the WebSocket message types; audio frames become `audio` events carrying the
frame base64-encoded with the `seq` of its segment:

    id: 7
    event: audio
    data: {"seq":0,"ms":20.0,"audio":"AAABAAIA..."}
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import msgspec

from ..media import EncodedFrame
from .messages import SegmentStart, ServerMessage

_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class SseEvent:
    id: int
    kind: str
    data: bytes
    audio_ms: float = 0.0

    def encode(self) -> bytes:
        return b"id: %d\nevent: %s\ndata: %s\n\n" % (self.id, self.kind.encode(), self.data)


KEEPALIVE = b": keep-alive\n\n"


class SseEncoder:
    """Numbers the events of one stream and remembers which segment an audio frame belongs to."""

    def __init__(self, first_id: int = 1) -> None:
        """`first_id`: where the numbering starts (a session another server's stream began)."""
        self.next_id = first_id
        self._seq: int | None = None

    def event(self, item: EncodedFrame | ServerMessage) -> SseEvent:
        if isinstance(item, EncodedFrame):
            payload = {"seq": self._seq, "ms": round(item.duration_ms, 3), "audio": base64.b64encode(item.data).decode()}
            event = SseEvent(self.next_id, "audio", _encoder.encode(payload), item.duration_ms)
        else:
            if isinstance(item, SegmentStart):
                self._seq = item.seq
            kind = type(item).__struct_config__.tag
            event = SseEvent(self.next_id, str(kind), _encoder.encode(item))
        self.next_id += 1
        return event
