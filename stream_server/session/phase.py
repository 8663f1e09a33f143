"""Where a stream is in its life (`Phase`), and the one way a client can overflow it."""

from __future__ import annotations

import enum


class ControlOverflow(Exception):
    """The client let more than `CONTROL_LANE` replies pile up without reading."""


class Phase(enum.Enum):
    OPEN = "open"
    STOPPING = "stopping"
    """The server ended the stream; its goodbye (`Error`, `Stopped`) waits to be sent."""
    FINISHED = "finished"
    """`Done` or `Stopped` was handed out: nothing more to send."""
    ABANDONED = "abandoned"
    """Stopped, and the client did not take the goodbye in time: drop the connection."""
