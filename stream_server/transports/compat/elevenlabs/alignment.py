"""A context's word timings in ElevenLabs' shape, sans I/O: `alignment` (and the same as
`normalizedAlignment`: the server does not rewrite the text) on the audio message that follows.

ElevenLabs' `{"chars", "charStartTimesMs", "charDurationsMs"}` restart at zero in every message,
and a client (Pipecat) moves its clock on by each message's span, the last character's start plus
its duration. So the spans here tile the context's timeline: a message's times count from where
the previous one's span ended (the context's first audio for the first), each word is followed by
its space (as the client sent it: a word is complete once its space arrives), and the silence
before a word is the offset of its first character. Times are whole milliseconds, rounded on the
stream's timeline first, so that the spans add up without drift.
"""

from __future__ import annotations

from ....protocol import Alignment


class AlignmentClock:
    def __init__(self) -> None:
        self._until_ms = 0
        """Where the last span handed out ended, in ms of the context's audio."""
        self._pending: tuple[int, list[str], list[int], list[int]] | None = None
        """What waits for the next audio message: its span's start, chars, starts, ends (absolute)."""

    def add(self, alignment: Alignment) -> None:
        """An `alignment` of the stream (with `chars`): for the next audio message."""
        base, chars, starts, ends = self._pending or (self._until_ms, [], [], [])
        char_times = iter(alignment.chars or ())
        for word in alignment.words:
            start, end = round(word.start_ms), round(word.end_ms)
            start = max(start, self._until_ms)
            end = max(end, start)
            for char in word.text:
                timed = next(char_times, None)
                chars.append(char)
                starts.append(min(end, max(start, round(timed.start_ms))) if timed else start)
                ends.append(min(end, max(start, round(timed.end_ms))) if timed else end)
            chars.append(" ")  # the word is complete: its space, at its end
            starts.append(end)
            ends.append(end)
            self._until_ms = end
        self._pending = (base, chars, starts, ends)

    def take(self) -> dict[str, list[object]] | None:
        """The alignment for the audio message being sent, if any words wait for it."""
        if self._pending is None:
            return None
        base, chars, starts, ends = self._pending
        self._pending = None
        return {
            "chars": list(chars),
            "charStartTimesMs": [start - base for start in starts],
            "charDurationsMs": [max(0, end - start) for start, end in zip(starts, ends, strict=True)],
        }

    def drop(self) -> None:
        """A barge-in: timings of audio that will not be sent are not sent either."""
        self._pending = None
