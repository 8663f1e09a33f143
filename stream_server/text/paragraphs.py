"""Which segments open a new paragraph, for a longer pause before them.

The segmenter returns stripped segments at once, before the whitespace after a sentence has
arrived, so whether a blank line follows is known only when the next segment comes. Segments are
exact substrings of the input, in order, so the whitespace between two of them is found by
walking the input alongside. Sans I/O; holds only the input not yet matched to a segment.
"""

from __future__ import annotations

import re

# A line break, optional spaces, and another line break: a blank line.
_BLANK_LINE = re.compile(r"\n[^\S\n]*\n")


class ParagraphTracker:
    def __init__(self) -> None:
        self._raw = ""

    def feed(self, text: str) -> None:
        self._raw += text

    def starts(self, segments: list[str]) -> list[bool]:
        """For each segment just emitted, in order: does a blank line precede it?"""
        flags = []
        for segment in segments:
            at = self._raw.find(segment)
            if at < 0:  # cannot happen with the segmenter's output; never guess a pause
                flags.append(False)
                continue
            flags.append(bool(_BLANK_LINE.search(self._raw, 0, at)))
            self._raw = self._raw[at + len(segment) :]
        return flags

    def reset(self) -> None:
        self._raw = ""
