"""What the nodes of a cluster say to each other about an SSE session, sans I/O.

A session shared through Redis (`sse_store.py`) is three keys and a lease: the text commands any
node accepted (a Redis Stream the owner consumes in order), the events the owner rendered (a Redis
Stream any node's reader follows, entry id = SSE event id), and a hash of facts (whose session it
is, its config, the next text `seq`, what readers took, what was spoken). This module holds their
encodings, and the bookkeeping that lets a new owner replay the text not yet spoken after the old
one died: `Checkpoints` (where, in the text commands, each spoken segment ends) and `Renumbering`
(the new stream's outputs continued where the old one's stopped). Nothing here does I/O.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TypeVar

import msgspec

from ..protocol import ErrorCode
from ..media import EncodedFrame
from ..protocol.messages import Ready, SegmentEnd, SegmentStart, Warning
from ..protocol.sse import SseEvent
from .link import hashed, key

T = TypeVar("T")

END_KIND = "__end__"
"""The last entry of a session's events: readers end there (it is not sent to clients)."""



def session_keys(session_id: str) -> SessionKeys:
    return SessionKeys(hashed(session_id))


@dataclass(frozen=True, slots=True)
class SessionKeys:
    """A session's Redis keys, named by the hash of its id (the id itself never goes to Redis)."""

    name: str

    @property
    def meta(self) -> str:
        return key("sse", self.name, "meta")

    @property
    def text(self) -> str:
        return key("sse", self.name, "text")

    @property
    def events(self) -> str:
        return key("sse", self.name, "events")

    @property
    def lease(self) -> str:
        return key("sse", self.name, "lease")

    @property
    def all(self) -> list[str]:
        return [self.meta, self.text, self.events, self.lease]


# -- text commands ----------------------------------------------------------------------------


class TextCommand(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=True):
    """One text POST (or a DELETE: `cancel`) as the owner applies it."""

    text: str = ""
    flush: bool = False
    end: bool = False
    cancel: bool = False
    played_ms: float | None = None
    """With `cancel`: the client's playback position (DELETE's `?played_ms=`)."""


_command_decoder = msgspec.json.Decoder(TextCommand)


def encode_command(command: TextCommand) -> bytes:
    return msgspec.json.encode(command)


def decode_command(data: bytes) -> TextCommand:
    return _command_decoder.decode(data)


# -- events -----------------------------------------------------------------------------------


def event_fields(event: SseEvent) -> dict[str, bytes]:
    """An event as the fields of its entry (the entry's id is the event's id)."""
    return {"k": event.kind.encode(), "d": event.data, "ms": repr(event.audio_ms).encode()}


END_FIELDS = {"k": END_KIND.encode()}


def event_of(entry_id: bytes, fields: dict[bytes, bytes]) -> SseEvent | None:
    """The event of a stream entry, or None for the end marker."""
    kind = fields[b"k"].decode()
    if kind == END_KIND:
        return None
    return SseEvent(entry_number(entry_id), kind, fields[b"d"], float(fields.get(b"ms", b"0")))


def entry_number(entry_id: bytes | str) -> int:
    """The event id of an events entry (`7-0` → 7), or the milliseconds part of a text entry's."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.partition("-")[0])


# -- replay after a takeover ------------------------------------------------------------------


class Checkpoint(msgspec.Struct, frozen=True):
    """After text command `after` (a text stream entry id; "0-0": none) was applied, the stream
    had cut `segments` segments and held `tail`, text not cut into a segment yet. A new stream
    that is given `tail` and then the commands after `after` cuts segment `segments` first."""

    after: str = "0-0"
    segments: int = 0
    tail: str = ""


_checkpoint_decoder = msgspec.json.Decoder(Checkpoint)


def encode_checkpoint(checkpoint: Checkpoint) -> bytes:
    return msgspec.json.encode(checkpoint)


def decode_checkpoint(data: bytes | None) -> Checkpoint:
    return Checkpoint() if not data else _checkpoint_decoder.decode(data)


class Checkpoints:
    """The owner's record of where segments were cut, to tell Redis the latest point from which a
    replay repeats nothing spoken. Bounded: those not yet passed by a spoken segment, at most
    `MAX` (a point given up early only makes a replay repeat more)."""

    MAX = 1024

    def __init__(self, start: Checkpoint) -> None:
        self._points: deque[Checkpoint] = deque([start])

    @property
    def latest(self) -> Checkpoint:
        """The point a replay would start from now."""
        return self._points[0]

    def applied(self, point: Checkpoint) -> None:
        if len(self._points) >= self.MAX:
            self._points.pop()  # the newest goes: the first (where a replay starts) must stay
        self._points.append(point)

    def spoken(self, segments: int) -> Checkpoint | None:
        """`segments` segments are spoken (rendered to the end): the latest point that cut no
        more than those, if it moved (the new one to store), else None."""
        moved = False
        while len(self._points) > 1 and self._points[1].segments <= segments:
            self._points.popleft()
            moved = True
        return self._points[0] if moved else None


class Renumbering:
    """A replacement stream's outputs as the session's: its `ready` becomes a `session_moved`
    warning, segments already spoken before the takeover are left out (a command that cut
    several segments is replayed whole), and segment numbers go on from the old stream's."""

    def __init__(self, base: int, spoken: int) -> None:
        self._base = base
        """The session's number of the new stream's segment 0 (the checkpoint's `segments`)."""
        self._spoken = spoken
        """Segments the session spoke in full: the new stream's below it are skipped."""
        self._skipping = False

    def output(self, item: T) -> T | Warning | None:
        """`item` as the session sends it, or None when it is left out."""
        if isinstance(item, Ready):
            return Warning(
                code=ErrorCode.SESSION_MOVED,
                message="the server running this session went away and another took it over: "
                "the segment being spoken restarts from its start",
                seq=self._spoken,
            )
        if isinstance(item, SegmentStart | SegmentEnd):
            session_seq = item.seq + self._base
            skipped = session_seq < self._spoken
            self._skipping = skipped and isinstance(item, SegmentStart)
            return None if skipped else msgspec.structs.replace(item, seq=session_seq)  # type: ignore[return-value]
        if isinstance(item, Warning) and item.seq is not None:
            session_seq = item.seq + self._base
            return None if session_seq < self._spoken else msgspec.structs.replace(item, seq=session_seq)
        if self._skipping and isinstance(item, EncodedFrame):
            return None  # audio of a skipped segment
        return item


def resume_error(cursor: int) -> bytes:
    gone = {"type": "error", "code": ErrorCode.RESUME_UNAVAILABLE, "message": f"events after {cursor} are no longer kept"}
    return b"event: error\ndata: %s\n\n" % msgspec.json.encode(gone)


def cluster_error(message: str) -> bytes:
    """The last thing a reader writes when Redis went away (the stream then ends)."""
    body = {"type": "error", "code": ErrorCode.CLUSTER_UNAVAILABLE, "message": message}
    return b"event: error\ndata: %s\n\n" % msgspec.json.encode(body)
