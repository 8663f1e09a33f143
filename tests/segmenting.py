"""Feeding the segmenter in tests: pieces in, typed segments or their texts out."""

from __future__ import annotations

from stream_server.text import Segment, SentenceSegmenter


def texts(segments: list[Segment]) -> list[str]:
    return [segment.text for segment in segments]


def feed(text: str, cuts: list[int], **options: object) -> list[Segment]:
    """Push `text` in pieces split at `cuts`, then flush; return all segments."""
    seg = SentenceSegmenter(**options)  # type: ignore[arg-type]
    out: list[Segment] = []
    previous = 0
    for cut in [*sorted(set(cuts)), len(text)]:
        out += seg.push(text[previous:cut])
        previous = cut
    return out + seg.flush()
