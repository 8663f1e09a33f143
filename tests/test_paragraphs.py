"""ParagraphTracker: which segments follow a blank line, whatever the chunking."""

from __future__ import annotations

import random

import pytest

from stream_server.text import SentenceSegmenter
from stream_server.text.paragraphs import ParagraphTracker

TEXT = "First one. Second one.\n\nThird, new paragraph.\n  \nFourth.\nFifth on a new line.\n\n\nSixth."
EXPECTED = [False, False, True, True, False, True]


@pytest.mark.parametrize("seed", range(20))
def test_blank_lines_mark_paragraph_starts_under_any_chunking(seed: int) -> None:
    rng = random.Random(seed)
    segmenter, tracker = SentenceSegmenter(), ParagraphTracker()
    flags: list[bool] = []
    i = 0
    while i < len(TEXT):
        piece = TEXT[i : i + rng.randint(1, 6)]
        i += len(piece)
        tracker.feed(piece)
        segments = segmenter.push(piece)
        flags += tracker.starts(segments)
    flags += tracker.starts(segmenter.flush())
    assert flags == EXPECTED


def test_the_tracker_keeps_only_unmatched_text() -> None:
    tracker = ParagraphTracker()
    tracker.feed("One. " * 1000)
    tracker.starts(["One."] * 1000)
    assert tracker._raw.strip() == ""
