"""Several contexts on one socket, sans I/O: which are open, the cap on them, and who has the audio.

A context is a stream of its own (its text, segments, `ready`, `done`); they share one socket,
whose binary frames do not say which context they belong to. So a context takes the socket's
audio — the floor — with its `segment` message (or an audio frame outside a segment: a
container's trailer) and keeps it until its `segment_end`, `cancelled`, `done` or its end; other
contexts' audio waits meanwhile, their JSON messages (which name their context) do not. A client
thus reads a binary frame as the audio of the context of the last `segment`.

The floor is handed over in the order contexts asked for it, so one context with many segments
queued cannot keep the others waiting for more than one of its segments at a time.

The table is generic in what it keeps per context (the WebSocket keeps a `Stream`); the default
context of a socket (`None`) takes the floor like the others but is not in the table.
"""

from __future__ import annotations

from collections import deque
from typing import Final, Generic, TypeVar

from ..media import EncodedFrame
from ..protocol import Cancelled, Done, ErrorCode, ProtocolError, SegmentEnd, SegmentStart
from ..session import Stopped

S = TypeVar("S")

ContextKey = str | None
"""A context's id; None: the socket's default context."""


class _Free:
    def __repr__(self) -> str:
        return "FREE"


FREE: Final = _Free()

# What takes the socket's audio for its context, and what gives it back.
_TAKES_FLOOR: Final = (SegmentStart, EncodedFrame)
_GIVES_FLOOR_BACK: Final = (SegmentEnd, Cancelled, Done, Stopped)


class ContextTable(Generic[S]):
    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._open: dict[str, S] = {}
        self._ending = False
        self._holder: ContextKey | _Free = FREE
        self._waiting: deque[ContextKey] = deque()

    # -- which contexts are open -----------------------------------------------------------------

    def get(self, context: str) -> S | None:
        return self._open.get(context)

    def __len__(self) -> int:
        return len(self._open)

    def values(self) -> list[S]:
        return list(self._open.values())

    @property
    def ending(self) -> bool:
        """Input has ended for the whole socket: no context opens any more."""
        return self._ending

    def admit(self, context: str) -> None:
        """Whether a new context may open now; raises the `ProtocolError` that refuses it."""
        if context in self._open:
            raise ValueError(f"context {context!r} is open already")
        if self._ending:
            raise ProtocolError(ErrorCode.STREAM_ENDED, "input has ended on this socket; no new context opens")
        if len(self._open) >= self.cap:
            raise ProtocolError(
                ErrorCode.TOO_MANY_CONTEXTS,
                f"{len(self._open)} contexts are open on this socket (at most {self.cap}): "
                f"end one (`end` with its context) before opening {context!r}",
            )

    def add(self, context: str, value: S) -> None:
        self.admit(context)
        self._open[context] = value

    def remove(self, context: str) -> None:
        """The context is over (its `done` was sent, it was stopped, or its client went away)."""
        self._open.pop(context, None)
        self.withdraw(context)

    def end_all(self) -> list[S]:
        """`end` without a context: no new context opens; returns the open ones, to be ended."""
        self._ending = True
        return self.values()

    # -- the floor: whose audio the socket carries --------------------------------------------------

    @property
    def holder(self) -> ContextKey | _Free:
        return self._holder

    def claim(self, context: ContextKey, output: object) -> bool:
        """Whether `context` may send `output` now. Audio needs the floor: it is taken when free,
        else the context queues for it (and must `claim` again when woken, or `withdraw`).
        Everything else goes at once."""
        if not isinstance(output, _TAKES_FLOOR) or self._holder == context:
            return True
        if self._holder is FREE and not self._waiting:
            self._holder = context
            return True
        if context not in self._waiting:
            self._waiting.append(context)
        return False

    def sent(self, context: ContextKey, output: object) -> bool:
        """`context` sent `output`; returns whether the floor changed hands (wake the waiters)."""
        if isinstance(output, _GIVES_FLOOR_BACK) and self._holder == context:
            self._hand_over()
            return True
        return False

    def withdraw(self, context: ContextKey) -> bool:
        """`context` no longer wants the floor (a `cancel` dropped what waited for it, or it is
        over); returns whether the floor changed hands."""
        if context in self._waiting:
            self._waiting.remove(context)
        if self._holder == context:
            self._hand_over()
            return True
        return False

    def _hand_over(self) -> None:
        self._holder = self._waiting.popleft() if self._waiting else FREE
