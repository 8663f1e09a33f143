"""What the segmenter decides at each event (a possible boundary) in the text.

Every event gets a verdict from a bounded window of text around it: BREAK (the segment ends at a
given index), CONTINUE (no boundary; scan on), WAIT (the window runs past the buffered text: ask
again after the next push). The rule modules (`sentence_ends`, `layout`) return these.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, auto

__all__ = ["CONTINUE", "MAX_GAP", "WAIT", "Decision", "Verdict", "break_at"]

# A whitespace run longer than this after a possible end settles it: the end is a real one, and
# a line break further back than this does not make a blank line. It bounds every window that
# looks across whitespace.
MAX_GAP = 16


class Verdict(Enum):
    BREAK = auto()
    CONTINUE = auto()
    WAIT = auto()


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    end: int = 0  # BREAK: buffer index where the segment ends (exclusive)
    resume: int = 0  # CONTINUE: scan on from here (0: from the next character)


CONTINUE = Decision(Verdict.CONTINUE)
WAIT = Decision(Verdict.WAIT)


def break_at(end: int) -> Decision:
    return Decision(Verdict.BREAK, end)
