"""What a stream's client was told it hears, sans I/O: where each segment sits in the client's text,
and the recent words handed out, for the `cancelled` reply.

`TextOffsets` follows the client's text as the segmenter cuts it: a segment is the client's own
text, stripped, so it is found in what the segmenter has not yet given out; only the text the
segmenter still holds is kept (its `pending_chars`), so memory stays within the segmenter's.

`SpokenWords` turns a `PendingAlignment` from the ring into the protocol's `alignment` at the
moment it is sent (its times are relative to the audio after it; the stream's audio sent so far
makes them absolute) and remembers the last `RECENT_WORDS` words, so that a `cancel` can name the
last word sent and, given the client's playback position, the last word heard.
"""

from __future__ import annotations

from collections import deque
from typing import Final

from ..protocol import AlignedChar, AlignedWord, Alignment, Cancelled, HeardWord
from .timeline import PendingAlignment, PlacedWord

# Words remembered for `cancelled`: minutes of speech, more than any client's playback lags.
RECENT_WORDS: Final = 512
# Times go out to a tenth of a millisecond.
_DECIMALS: Final = 1


class TextOffsets:
    def __init__(self) -> None:
        self._unplanned = ""
        """The client's text not yet found in a segment: at most what the segmenter holds."""
        self._base = 0
        """The offset of `_unplanned` in the client's text."""

    def received(self, text: str) -> None:
        self._unplanned += text

    def planned(self, segment_text: str) -> int | None:
        """The offset of a segment just cut (in order) in the client's text."""
        index = self._unplanned.find(segment_text)
        if index < 0:
            return None
        cut = index + len(segment_text)
        offset = self._base + index
        self._base += cut
        self._unplanned = self._unplanned[cut:]
        return offset

    def settle(self, held_chars: int) -> None:
        """The segmenter holds the last `held_chars` characters: the rest will never be a segment."""
        drop = max(0, len(self._unplanned) - held_chars)
        if drop:
            self._base += drop
            self._unplanned = self._unplanned[drop:]


class SpokenWords:
    def __init__(self, mode: str) -> None:
        """`mode` is the stream's `timestamps`: "none" records the words without sending them."""
        self._mode = mode
        self._recent: deque[HeardWord] = deque(maxlen=RECENT_WORDS)

    def delivered(self, item: PendingAlignment, audio_ms: float) -> Alignment | None:
        """`item` reaches the client after `audio_ms` of the stream's audio: its `alignment`
        (None when the stream did not ask for them)."""
        words = [word.shifted(audio_ms) for word in item.words]
        for word in words:
            self._recent.append(HeardWord(seq=item.seq, **_word_fields(word)))
        if self._mode == "none" or not words:
            return None
        chars = [_chars(word) for word in words] if self._mode == "char" else None
        return Alignment(
            seq=item.seq,
            words=[AlignedWord(**_word_fields(word)) for word in words],
            chars=[char for word_chars in chars for char in word_chars] if chars is not None else None,
        )

    def cancelled(self, audio_ms: float, played_ms: float | None) -> Cancelled:
        """The reply to a `cancel` after `audio_ms` of audio was sent, the client having played
        `played_ms` of it (when it says)."""
        return Cancelled(
            audio_ms=round(audio_ms, 3),
            played_ms=played_ms,
            last_sent=self._last_before(audio_ms),
            last_heard=None if played_ms is None else self._last_before(min(played_ms, audio_ms)),
        )

    def _last_before(self, at_ms: float) -> HeardWord | None:
        """The last word whose start is before `at_ms`: some of it is in the audio before."""
        for word in reversed(self._recent):
            if word.start_ms < at_ms:
                return word
        return None


def _word_fields(word: PlacedWord) -> dict[str, object]:
    return {
        "text": word.text,
        "start_ms": round(word.start_ms, _DECIMALS),
        "end_ms": round(word.end_ms, _DECIMALS),
        "char_start": word.char_start,
        "char_end": word.char_end,
    }


def _chars(word: PlacedWord) -> list[AlignedChar]:
    """Each character of `word`, ending where the next begins (the last where the word ends)."""
    ends = (*word.char_ms[1:], word.end_ms)
    return [
        AlignedChar(char=char, start_ms=round(start, _DECIMALS), end_ms=round(end, _DECIMALS))
        for char, start, end in zip(word.text, word.char_ms, ends, strict=False)
    ]
