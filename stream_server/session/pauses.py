"""Silence between segments, chosen by how the segmenter says each one ended."""

from __future__ import annotations

from dataclasses import dataclass

from ..text import Ending, Segment


@dataclass(frozen=True, slots=True)
class Pauses:
    sentence_ms: float = 200.0
    paragraph_ms: float = 450.0
    clause_ms: float = 80.0
    """After a piece that is not a whole sentence (a clause, a cut for length, a flush)."""

    def after(self, segment: Segment) -> float:
        return self.sentence_ms if segment.ending is Ending.SENTENCE else self.clause_ms

    def before(self, segment: Segment) -> float:
        """A paragraph's pause is known when its next segment comes: the rest of it goes first."""
        return max(0.0, self.paragraph_ms - self.sentence_ms) if segment.paragraph_start else 0.0
