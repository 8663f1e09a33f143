"""Between the encoder and the socket: the bounded per-stream queue that carries backpressure, and
the pacer that keeps sent audio close to real time. Sans I/O."""

from .pacing import Pacer
from .ring import AudioRing

__all__ = ["AudioRing", "Pacer"]
