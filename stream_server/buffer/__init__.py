"""Between the encoder and the socket: the bounded per-stream queues that carry backpressure."""

from .outbox import Outbox, OutboxOverflow
from .pacing import Pacer
from .ring import AudioRing

__all__ = ["AudioRing", "Outbox", "OutboxOverflow", "Pacer"]
