"""A simulated audio player: a playout clock behind a jitter buffer, counting underruns. Sans I/O.

The client tells it when audio arrived and how long it lasts; the player plays it at real time.
It starts playing once `jitter_buffer_ms` of audio is buffered (or a segment is complete, or the
stream has ended: a short sentence is played, not held back). Once playing, the playhead moves at
real time; if it reaches the end of the audio received before the stream has ended, the player
ran dry: an **underrun**. It then re-buffers (waits for `jitter_buffer_ms` again, or the segment
end) before it resumes; the time it spent silent is `stall_ms`.

All times are milliseconds on any monotonic clock the caller chooses; calls must come in
non-decreasing time order.

What counts as an underrun is deliberately plain: any dry moment before the stream's end. A gap
because the *text* had not arrived yet (an LLM slower than speech) would count too, so a run must
send tokens faster than the audio plays (the defaults do: 40 words/s against 12.5 for `tone` and
about 3 for Piper).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PlayoutSummary:
    started_at_ms: float | None
    """When playback first started (None: never: no audio)."""
    underruns: int
    stall_ms: float
    """Total silence after underruns, until playback resumed (0 without underruns)."""
    played_ms: float
    """Audio received (and so, eventually, played)."""
    ends_at_ms: float | None
    """When the last audio will have played, if the stream has ended and playback started."""


class PlayoutClock:
    def __init__(self, jitter_buffer_ms: float) -> None:
        if jitter_buffer_ms < 0:
            raise ValueError("jitter_buffer_ms must be >= 0")
        self._jitter_ms = jitter_buffer_ms
        self._playing = False
        self._dry_at = 0.0
        """While playing: when the playhead reaches the end of the audio received so far."""
        self._buffered_ms = 0.0
        """While not playing: audio waiting for playback to (re)start."""
        self._stalled_since: float | None = None
        self._started_at: float | None = None
        self._finished = False
        self._last_at = float("-inf")
        self.underruns = 0
        self.stall_ms = 0.0
        self.received_ms = 0.0

    @property
    def playing(self) -> bool:
        return self._playing

    def buffered_ms(self, at_ms: float) -> float:
        """Audio received but not yet played at `at_ms` (after accounting for a dry moment)."""
        self._advance(at_ms)
        return max(0.0, self._dry_at - at_ms) if self._playing else self._buffered_ms

    def push(self, at_ms: float, duration_ms: float) -> None:
        """`duration_ms` of audio arrived at `at_ms`."""
        if self._finished:
            raise RuntimeError("audio after the end of the stream")
        if duration_ms < 0:
            raise ValueError("duration_ms must be >= 0")
        self._advance(at_ms)
        self.received_ms += duration_ms
        if self._playing:
            self._dry_at += duration_ms
            return
        self._buffered_ms += duration_ms
        if self._buffered_ms > 0 and self._buffered_ms >= self._jitter_ms:
            self._start(at_ms)

    def segment_complete(self, at_ms: float) -> None:
        """The current segment's audio has all arrived: play what is buffered, however short."""
        self._advance(at_ms)
        if not self._playing and self._buffered_ms > 0:
            self._start(at_ms)

    def finish(self, at_ms: float) -> None:
        """The stream has ended: no more audio comes, so running dry from here on is not an underrun."""
        self.segment_complete(at_ms)
        self._finished = True

    def summary(self) -> PlayoutSummary:
        ends = self._dry_at if (self._finished and self._started_at is not None) else None
        return PlayoutSummary(
            started_at_ms=self._started_at,
            underruns=self.underruns,
            stall_ms=self.stall_ms,
            played_ms=self.received_ms,
            ends_at_ms=ends,
        )

    def _advance(self, at_ms: float) -> None:
        if at_ms < self._last_at:
            raise ValueError(f"time went backwards: {at_ms} < {self._last_at}")
        self._last_at = at_ms
        if self._playing and not self._finished and at_ms > self._dry_at:
            self.underruns += 1
            self._playing = False
            self._buffered_ms = 0.0
            self._stalled_since = self._dry_at

    def _start(self, at_ms: float) -> None:
        self._playing = True
        self._dry_at = at_ms + self._buffered_ms
        self._buffered_ms = 0.0
        if self._started_at is None:
            self._started_at = at_ms
        elif self._stalled_since is not None:
            self.stall_ms += at_ms - self._stalled_since
        self._stalled_since = None
