"""What one stream saw, from the client's side. Sans I/O: the transport clients feed it events.

Times are `time.perf_counter()` seconds as the clients read them; figures come out in ms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .playout import PlayoutClock

MAX_ERRORS_KEPT = 8  # per stream: enough to see what went wrong, bounded however badly it goes


@dataclass(slots=True)
class StreamRecord:
    """One finished stream: the figures a run aggregates."""

    ok: bool
    ttfa_ms: float | None
    """From sending the token that completed the first sentence to the first audio frame."""
    server_ttfa_ms: float | None
    """The server's own `done.ttfa_ms`."""
    server_added_ms: float | None
    """`done.ttfa_ms - done.provider_ms`: the server's part of a cloud provider's TTFA."""
    gaps_ms: list[float]
    """Between the last frame of a segment and the first frame of the next, as received."""
    frames: int
    audio_ms: float
    underruns: int | None
    """None when the stream was consumed as fast as possible (no player)."""
    stall_ms: float | None
    rtf: float | None
    """From sending the first token to the last audio frame, over the audio's duration."""
    errors: list[str]
    duration_s: float


@dataclass(slots=True)
class StreamObserver:
    completing_index: int
    """The token whose sending starts the TTFA clock."""
    expected_first_segment: str
    player: PlayoutClock | None = None
    opened_at: float | None = None
    reference_at: float | None = None
    first_token_at: float | None = None
    first_audio_at: float | None = None
    last_audio_at: float | None = None
    segment_open: bool = False
    first_segment_text: str | None = None
    frames: int = 0
    audio_ms: float = 0.0
    gaps_ms: list[float] = field(default_factory=list)
    done: dict[str, Any] | None = None
    closed_at: float | None = None
    close_code: int | None = None
    errors: list[str] = field(default_factory=list)
    _segment_has_audio: bool = False
    _previous_segment_last_audio_at: float | None = None

    def opened(self, at: float) -> None:
        self.opened_at = at

    def token_sent(self, index: int, at: float) -> None:
        if self.first_token_at is None:
            self.first_token_at = at
        if index == self.completing_index:
            self.reference_at = at

    def segment(self, at: float, text: str) -> None:
        if self.first_segment_text is None:
            self.first_segment_text = text
        self.segment_open = True
        self._segment_has_audio = False

    def audio(self, at: float, duration_ms: float) -> None:
        if self.first_audio_at is None:
            self.first_audio_at = at
        if not self._segment_has_audio:
            self._segment_has_audio = True
            if self._previous_segment_last_audio_at is not None:
                self.gaps_ms.append((at - self._previous_segment_last_audio_at) * 1000.0)
        self.last_audio_at = at
        self.frames += 1
        self.audio_ms += duration_ms
        if self.player is not None:
            self.player.push(at * 1000.0, duration_ms)

    def segment_end(self, at: float) -> None:
        self.segment_open = False
        if self._segment_has_audio:
            self._previous_segment_last_audio_at = self.last_audio_at
        if self.player is not None:
            self.player.segment_complete(at * 1000.0)

    def finished(self, at: float, done: dict[str, Any]) -> None:
        self.done = done
        if self.player is not None:
            self.player.finish(at * 1000.0)

    def closed(self, at: float, code: int | None) -> None:
        self.closed_at = at
        self.close_code = code

    def error(self, description: str) -> None:
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(description)

    def record(self, expect_close_code: int | None = None) -> StreamRecord:
        """The stream's figures; checks that it went as the protocol says, else it is not ok."""
        problems = list(self.errors)
        if self.done is None:
            problems.append("no done message")
        if self.first_audio_at is None:
            problems.append("no audio")
        if self.reference_at is None:
            problems.append("the completing token was never sent")
        if expect_close_code is not None and self.close_code != expect_close_code:
            problems.append(f"closed with {self.close_code}, not {expect_close_code}")
        if self.first_segment_text is not None and self.first_segment_text != self.expected_first_segment:
            problems.append(f"first segment {self.first_segment_text!r}, expected {self.expected_first_segment!r}")
        ttfa: float | None = None
        if self.reference_at is not None and self.first_audio_at is not None:
            ttfa = (self.first_audio_at - self.reference_at) * 1000.0
            if ttfa < 0:
                problems.append("audio arrived before the first sentence was complete")
        done = self.done or {}
        server_ttfa = done.get("ttfa_ms")
        provider_ms = done.get("provider_ms")
        added = server_ttfa - provider_ms if server_ttfa is not None and provider_ms is not None else None
        start = self.opened_at if self.opened_at is not None else self.reference_at
        end = self.closed_at or self.last_audio_at
        summary = self.player.summary() if self.player is not None else None
        rtf: float | None = None
        if self.first_token_at is not None and self.last_audio_at is not None and self.audio_ms > 0:
            rtf = (self.last_audio_at - self.first_token_at) * 1000.0 / self.audio_ms
        return StreamRecord(
            ok=not problems,
            ttfa_ms=ttfa,
            server_ttfa_ms=server_ttfa,
            server_added_ms=added,
            gaps_ms=self.gaps_ms,
            frames=self.frames,
            audio_ms=self.audio_ms,
            underruns=summary.underruns if summary else None,
            stall_ms=summary.stall_ms if summary else None,
            rtf=rtf,
            errors=problems[:MAX_ERRORS_KEPT],
            duration_s=(end - start) if (start is not None and end is not None) else 0.0,
        )
