"""Send audio no further ahead of real time than a lead, so the backlog stays where cancel reaches.

Unpaced, a fast server fills the kernel's socket buffers (megabytes: minutes of telephony audio)
and a barge-in must then wait for all of it to drain. Paced, at most `lead_ms` of audio is ever
past the ring: the client still gets a burst at the start (to fill its jitter buffer), then audio
at the speed it plays. Sans I/O: the sender asks how long to wait at `now`, and waits.
"""

from __future__ import annotations


class Pacer:
    def __init__(self, lead_ms: float) -> None:
        self.lead_ms = lead_ms
        self._origin: float | None = None  # when the audio sent so far would have started playing
        self._sent_ms = 0.0

    def delay(self, now: float) -> float:
        """Seconds to wait before sending the next audio (0 when unpaced or within the lead)."""
        if self.lead_ms <= 0:
            return 0.0
        if self._origin is None:
            self._origin = now
        played_ms = (now - self._origin) * 1000.0
        if played_ms > self._sent_ms:
            # A gap (waiting for text): the listener ran out of audio; playback resumes with ours.
            self._origin = now - self._sent_ms / 1000.0
            played_ms = self._sent_ms
        ahead_ms = self._sent_ms - played_ms
        return max(0.0, (ahead_ms - self.lead_ms) / 1000.0)

    def sent(self, audio_ms: float) -> None:
        self._sent_ms += audio_ms

    def reset(self) -> None:
        """A barge-in: the listener dropped what it had; the next audio starts afresh."""
        self._origin = None
        self._sent_ms = 0.0
