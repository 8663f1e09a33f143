"""A provider's word timings moved onto a stream's audio timeline, sans I/O.

A provider times a segment's words from the first sample it yields (`media.WordTiming`). Between
that and what a client hears the server changes the audio: a pause goes before the segment, the
seam shaper drops the provider's leading silence beyond a maximum (and its trailing silence, after
the last sound), and the pipeline resamples and cuts the audio into frames. `SegmentPlacer` works
on one segment in the synthesis' *epoch timeline* (ms of output audio since the epoch's pipeline
began, as the pipeline counts it): told where the segment's audio starts and how much leading
silence was dropped, it places each word, and releases it once the audio holding its first sample
has gone into the pipeline, so that its `alignment` goes into the ring just before the frames that
carry it and a barge-in drops a word's timing with its audio.

What goes into the ring (`PendingAlignment`) is timed relative to its own place there: 0 is the
first sample of the audio frame after it. The stream core adds the audio it has sent when it
hands the alignment out (spoken.py), which puts it on the stream's timeline whatever was dropped
before (a barge-in starts a new epoch and pipeline; the stream's timeline goes on).

Resampling keeps times in ms (up to the resampler's delay line, under a millisecond); a codec's
own delay (MP3's priming) is not in the times.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..media import WordTiming


@dataclass(frozen=True, slots=True)
class PlacedWord:
    """A word as the client's text writes it, timed on some timeline (see where it is used)."""

    text: str
    char_start: int | None
    """Offset in the client's text on this stream (None: not known)."""
    char_end: int | None
    start_ms: float
    end_ms: float
    char_ms: tuple[float, ...]
    """The start of each character of `text`."""

    def shifted(self, by_ms: float) -> PlacedWord:
        return PlacedWord(
            self.text, self.char_start, self.char_end, self.start_ms + by_ms, self.end_ms + by_ms,
            tuple(t + by_ms for t in self.char_ms),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class PendingAlignment:
    """Words of segment `seq`, in the ring: times in ms from the first sample of the audio after it."""

    seq: int
    words: tuple[PlacedWord, ...]


def subsequence_offsets(spoken: str, written: str) -> list[int] | None:
    """Where each character of `spoken` is in `written`, when `spoken` is `written` with some
    characters left out (emoji taken out, whitespace stripped); None when it is not."""
    if spoken == written:
        return list(range(len(written)))
    offsets, j = [], 0
    for char in spoken:
        j = written.find(char, j)
        if j < 0:
            return None
        offsets.append(j)
        j += 1
    return offsets


class SegmentPlacer:
    """One segment's words, from the provider's timing to the epoch timeline.

    `spoken` is the text the provider was given, `written` the segment's text as the client sent
    it (they differ where emoji were taken out), which starts at `text_offset` in the client's
    text. Words come in with `add` (with the audio, or before it); `start` says where the
    segment's sound begins once the seam shaper found it; `release` hands out the words whose
    first sample the pipeline has, `rest` the others at the segment's end.
    """

    def __init__(self, spoken: str, written: str, text_offset: int | None) -> None:
        self._spoken = spoken
        self._written = written
        self._map = subsequence_offsets(spoken, written)
        self._text_offset = text_offset
        self._held: list[WordTiming] = []
        """At most one per word of the segment's text: bounded by the segment's length."""
        self._base_ms: float | None = None
        self._origin_ms = 0.0
        self._last_start_ms = 0.0

    @property
    def started(self) -> bool:
        return self._base_ms is not None

    def add(self, words: Iterable[WordTiming]) -> None:
        self._held.extend(words)

    def start(self, base_ms: float, trimmed_ms: float) -> None:
        """The segment's audio starts at `base_ms` on the epoch timeline, after the shaper dropped
        `trimmed_ms` of the provider's leading silence: the provider's time 0 is that much earlier."""
        self._base_ms = self._last_start_ms = base_ms
        self._origin_ms = base_ms - trimmed_ms

    def release(self, upto_ms: float) -> list[PlacedWord]:
        """The words, in order, whose start is before `upto_ms` (the audio the pipeline has)."""
        if self._base_ms is None:
            return []
        out: list[PlacedWord] = []
        while self._held:
            word = self._place(self._held[0])
            if word.start_ms >= upto_ms:
                break
            del self._held[0]
            out.append(word)
            self._last_start_ms = word.start_ms
        return out

    def rest(self, base_ms: float, end_ms: float) -> list[PlacedWord]:
        """Every word not yet released, at the segment's end: its sound ended at `end_ms` (the
        shaper dropped the silence after), which no word outlasts. `base_ms`: where its audio
        began, in case the shaper never found any sound."""
        if self._base_ms is None:
            self.start(base_ms, 0.0)
        out = []
        for timing in self._held:
            out.append(word := self._place(timing, end_ms))
            self._last_start_ms = word.start_ms
        self._held.clear()
        return out

    def _place(self, timing: WordTiming, end_limit: float | None = None) -> PlacedWord:
        base = self._base_ms if self._base_ms is not None else 0.0
        start = max(self._origin_ms + timing.start_ms, base, self._last_start_ms)
        end = max(self._origin_ms + timing.end_ms, start)
        if end_limit is not None:
            start = min(start, max(end_limit, base))
            end = max(start, min(end, end_limit))
        text, char_start, char_end, char_ms = self._written_form(timing)
        clamped, floor = [], start
        for t in char_ms:
            floor = min(max(self._origin_ms + t, floor), end)
            clamped.append(floor)
        return PlacedWord(text, char_start, char_end, start, end, tuple(clamped))

    def _written_form(self, timing: WordTiming) -> tuple[str, int | None, int | None, tuple[float, ...]]:
        """The word as the client wrote it, its offsets in the client's text, and a start for
        each of its characters (one the provider did not get shares the time of the one before)."""
        mapping, start, end = self._map, timing.char_start, timing.char_end
        if mapping is None or self._text_offset is None or not 0 <= start < end <= len(mapping):
            return timing.text, None, None, timing.char_ms
        first, last = mapping[start], mapping[end - 1] + 1
        times: list[float] = []
        k = 0
        for index in range(first, last):
            while k + 1 < end - start and mapping[start + k + 1] <= index:
                k += 1
            times.append(timing.char_ms[k] if k < len(timing.char_ms) else timing.start_ms)
        return self._written[first:last], self._text_offset + first, self._text_offset + last, tuple(times)


def pending(seq: int, words: list[PlacedWord], reference_ms: float) -> PendingAlignment:
    """`words` (on the epoch timeline) for the ring, at the place where `reference_ms` of the
    epoch's audio is already in it."""
    return PendingAlignment(seq, tuple(word.shifted(-reference_ms) for word in words))
