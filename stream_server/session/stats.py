"""What one stream did, for its `done` message and the metrics."""

from __future__ import annotations

from dataclasses import dataclass

from ..protocol import Done


@dataclass(slots=True)
class StreamStats:
    """Times are the stream clock's (seconds); `segments` and `audio_ms` count what was sent, not
    what was dropped."""

    started_at: float
    first_segment_at: float | None = None
    """When the first segment was complete (ready for synthesis)."""
    first_chunk_at: float | None = None
    """When the provider's first audio arrived."""
    first_audio_at: float | None = None
    """When the first frame was sent."""
    segments: int = 0
    audio_ms: float = 0.0
    text_chars: int = 0
    segments_synthesized: int = 0

    @property
    def ttfa_s(self) -> float | None:
        if self.first_segment_at is None or self.first_audio_at is None:
            return None
        return self.first_audio_at - self.first_segment_at

    def done_message(self, now: float) -> Done:
        ttfa = provider = None
        if (ttfa_s := self.ttfa_s) is not None:
            ttfa = round(ttfa_s * 1000.0, 3)
            if self.first_chunk_at is not None and self.first_segment_at is not None:
                provider = round((self.first_chunk_at - self.first_segment_at) * 1000.0, 3)
        return Done(
            segments=self.segments,
            audio_ms=round(self.audio_ms, 3),
            text_chars=self.text_chars,
            elapsed_ms=round((now - self.started_at) * 1000.0, 3),
            ttfa_ms=ttfa,
            provider_ms=provider,
        )
