"""What the stream core hands its synthesis: the segments to synthesize, numbered, and then the
end of input."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ..text import Segment


@dataclass(frozen=True, slots=True)
class Planned:
    """A segment numbered for the client (`seq`), waiting for synthesis."""

    seq: int
    segment: Segment
    text_offset: int | None = None
    """Where the segment's text starts in all the text the client sent on the stream (for word
    timings' character offsets; None where it could not be found)."""

    @property
    def text(self) -> str:
        return self.segment.text


class EndOfInput:
    """Handed out by `next_segment` after the last segment, once input has ended."""

    def __repr__(self) -> str:
        return "END_OF_INPUT"


END_OF_INPUT: Final = EndOfInput()
