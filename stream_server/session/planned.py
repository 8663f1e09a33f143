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

    @property
    def text(self) -> str:
        return self.segment.text


class EndOfInput:
    """Handed out by `next_segment` after the last segment, once input has ended."""

    def __repr__(self) -> str:
        return "END_OF_INPUT"


END_OF_INPUT: Final = EndOfInput()
