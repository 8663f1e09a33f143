"""Where Twilio's playback is, estimated from what we sent: pacing, and re-framing into 20 ms frames.

Twilio plays what it is sent in order, at 8000 samples/s, and plays silence when its buffer runs
dry. Modelling that with a clock tells us (a) how far ahead of playback we are, so we send only a
small lead and a `clear` drops little, and (b) how much of a segment the caller had heard when a
barge-in cut it. Sans I/O: callers ask how long to wait, and wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .twilio_protocol import FRAME_BYTES, MULAW_SILENCE


class PlayoutClock:
    """Positions are in ms of audio sent since the call started (the playback timeline)."""

    def __init__(self, lead_ms: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.lead_ms = lead_ms
        self._clock = clock
        self._origin: float | None = None  # when position 0 would have played, gaps accounted for
        self.sent_ms = 0.0

    def played_ms(self) -> float:
        """The position Twilio's playback has reached (never past what was sent)."""
        if self._origin is None:
            return self.sent_ms
        return min(self.sent_ms, (self._clock() - self._origin) * 1000.0)

    def ahead_ms(self) -> float:
        return self.sent_ms - self.played_ms()

    def delay_s(self) -> float:
        """Seconds to wait before sending more audio, so we stay at most `lead_ms` ahead."""
        return max(0.0, (self.ahead_ms() - self.lead_ms) / 1000.0)

    def sent(self, audio_ms: float) -> None:
        now = self._clock()
        if self._origin is None or (now - self._origin) * 1000.0 > self.sent_ms:
            # Twilio's buffer ran dry (or nothing was ever sent): playback resumes with this audio now.
            self._origin = now - self.sent_ms / 1000.0
        self.sent_ms += audio_ms

    def cleared(self) -> None:
        """A `clear` emptied Twilio's buffer: what was sent past the playback position was never
        played, so the timeline continues from there (the cut segment counts only its heard part)."""
        self.sent_ms = self.played_ms()
        self._origin = None


class Framer:
    """Cuts a segment's μ-law bytes into exact 160-byte frames; the last is padded with silence.

    The server already sends 160-byte frames with only a segment's last one shorter, but re-framing
    costs nothing and keeps Twilio's frames exact whatever the upstream's frame size.
    """

    def __init__(self) -> None:
        self._pending = bytearray()

    def push(self, data: bytes) -> list[bytes]:
        self._pending += data
        cut = len(self._pending) - len(self._pending) % FRAME_BYTES
        frames = [bytes(self._pending[i : i + FRAME_BYTES]) for i in range(0, cut, FRAME_BYTES)]
        del self._pending[:cut]
        return frames

    def finish(self) -> bytes | None:
        """The segment's last, padded frame (None when the segment ended on a frame boundary)."""
        if not self._pending:
            return None
        frame = bytes(self._pending) + bytes([MULAW_SILENCE]) * (FRAME_BYTES - len(self._pending))
        self._pending.clear()
        return frame

    def reset(self) -> None:
        self._pending.clear()
