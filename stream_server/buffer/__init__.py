"""Between the encoder and the socket: the bounded per-stream queues that carry backpressure."""

from .outbox import Outbox, OutboxOverflow
from .ring import AudioRing

__all__ = ["AudioRing", "Outbox", "OutboxOverflow"]
