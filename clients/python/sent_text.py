"""Text sent but not yet spoken: how much there is, and when each segment's text went out."""

from __future__ import annotations

from collections import deque


def _matched_end(pending: str, segment: str) -> int | None:
    """Where `segment` ends in `pending`, comparing all but whitespace (the server trims and may
    fold it); None when `pending` does not start with it."""
    position = 0
    for char in segment:
        if char.isspace():
            continue
        while position < len(pending) and pending[position].isspace():
            position += 1
        if position >= len(pending) or pending[position] != char:
            return None
        position += 1
    return position


class SentText:
    def __init__(self) -> None:
        self._pending = ""
        self._offset = 0
        """Absolute position (in characters sent) of `_pending[0]`."""
        self._sends: deque[tuple[int, float]] = deque()
        """(absolute end position, send time) of every text message not yet fully spoken."""

    @property
    def unspoken_chars(self) -> int:
        return len(self._pending)

    @property
    def unspoken_text(self) -> str:
        return self._pending

    def add(self, text: str, sent_at: float) -> None:
        if text:
            self._pending += text
            self._sends.append((self._offset + len(self._pending), sent_at))

    def drop_all(self) -> None:
        """A cancel: the server discards everything sent so far."""
        self._offset += len(self._pending)
        self._pending = ""
        self._sends.clear()

    def segment_started(self, text: str) -> float | None:
        """Mark a segment as spoken; returns when its last character was sent, if found."""
        end = _matched_end(self._pending, text)
        if end is None:
            # Text the server rewrote (markup): count it as spoken all the same, so the count of
            # unspoken characters cannot drift upwards for good.
            end = min(len(text), len(self._pending))
            sent_at = None
        else:
            sent_at = self._sent_time(self._offset + end)
        self._pending = self._pending[end:]
        self._offset += end
        while self._sends and self._sends[0][0] <= self._offset:
            self._sends.popleft()
        return sent_at

    def _sent_time(self, position: int) -> float | None:
        for end, sent_at in self._sends:
            if end >= position:
                return sent_at
        return None
