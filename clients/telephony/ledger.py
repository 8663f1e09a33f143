"""What the caller heard: one record per segment, from arrival through playback to Twilio's mark.

A segment is `heard` when, and only when, Twilio echoes the mark sent after its last frame. A
barge-in settles the segments still in flight from the playout clock: the one being played is
`partly_heard` (with an estimate of how much), the ones after it `not_heard`. With the server's
word timings, each settled record also names the words heard (`heard_words`, `heard_text`). Twilio echoes the marks that a `clear`
dropped too; those echoes must not count as playback, so their names are remembered and ignored.

Every piece of text the call was given is in exactly one place: the server numbers a segment when
it cuts the text, and a `cancel` drops the segments it has not announced yet, so the ledger also
keeps the text given and not yet announced (`SentText`). Until a barge-in that text is one pending
record without a `seq`; the barge-in settles it as `not_heard`, together with the segments the
server announced while our `cancel` was on its way (their audio is never played).
"""

from __future__ import annotations

from collections import OrderedDict
from enum import StrEnum

import msgspec

from ..python.sent_text import SentText

MARK_PREFIX = "seg-"


class SegmentStatus(StrEnum):
    QUEUED = "queued"
    """Received from the server, no audio sent to Twilio yet."""
    PLAYING = "playing"
    """Some of its audio was sent to Twilio."""
    SENT = "sent"
    """All of its audio and its mark were sent; waiting for Twilio to echo the mark."""
    HEARD = "heard"
    PARTLY_HEARD = "partly_heard"
    NOT_HEARD = "not_heard"


IN_FLIGHT = (SegmentStatus.QUEUED, SegmentStatus.PLAYING, SegmentStatus.SENT)


class SegmentRecord(msgspec.Struct, kw_only=True):
    seq: int | None
    """The server's segment number (`segment.seq`); None for text the server had not announced as a
    segment yet (pending), or that a barge-in dropped before it was announced (not heard)."""
    text: str
    status: SegmentStatus = SegmentStatus.QUEUED
    audio_ms: float = 0.0
    """Audio sent to Twilio so far (the last frame counts a full 20 ms: it is padded)."""
    heard_ms: float = 0.0
    """How much the caller heard: all of it once the mark is echoed; an estimate after a barge-in."""
    confirmed: bool = False
    """True when Twilio's mark echo confirmed the playback (not a clock estimate)."""
    start_ms: float | None = None
    """Position of its first frame on the playback timeline."""
    words: list[TimedWord] = msgspec.field(default_factory=list)
    """The server's word timings for it (its `alignment` messages), from its first frame."""
    heard_words: list[str] | None = None
    """Once settled, the words whose start the caller heard (None: the server gave no timings)."""
    heard_text: str | None = None
    """Its text up to the end of the last word heard: what an agent keeps as said."""


class TimedWord(msgspec.Struct, kw_only=True):
    text: str
    offset_ms: float
    """From the segment's first frame."""


class HeardReport(msgspec.Struct, kw_only=True):
    heard: list[SegmentRecord]
    partly_heard: list[SegmentRecord]
    not_heard: list[SegmentRecord]
    pending: list[SegmentRecord]
    """Still queued or playing (no barge-in has settled them yet), and the text not cut yet."""


def mark_name(seq: int) -> str:
    return f"{MARK_PREFIX}{seq}"


def mark_seq(name: str) -> int | None:
    if not name.startswith(MARK_PREFIX) or not name[len(MARK_PREFIX) :].isdigit():
        return None
    return int(name[len(MARK_PREFIX) :])


class SegmentLedger:
    def __init__(self, max_segments: int = 500) -> None:
        self._max = max_segments
        # Announced segments by seq; text a barge-in dropped unannounced by a key of its own.
        self._records: OrderedDict[int | str, SegmentRecord] = OrderedDict()
        self._cleared_marks: OrderedDict[str, None] = OrderedDict()
        self._given = SentText()
        self._drops = 0
        self._settling: list[SegmentRecord] = []
        """The records the latest barge-in settled, including those settled after it."""

    def given(self, text: str) -> None:
        """Text sent to the server for this call."""
        self._given.add(text, 0.0)

    def announce(self, seq: int, text: str, stale: bool = False) -> None:
        """The server's `segment`; `stale` when it was sent before the server took our `cancel`."""
        self._given.segment_started(text)
        record = SegmentRecord(seq=seq, text=text)
        if stale:
            record.status = SegmentStatus.NOT_HEARD
            self._settling.append(record)
        self._add(seq, record)

    def _add(self, key: int | str, record: SegmentRecord) -> None:
        self._records[key] = record
        while len(self._records) > self._max:
            self._records.popitem(last=False)

    def _unsegmented(self) -> SegmentRecord | None:
        text = self._given.unspoken_text.strip()
        return SegmentRecord(seq=None, text=text) if text else None

    def timed(self, seq: int, words: list[TimedWord]) -> None:
        """Word timings of segment `seq` (bounded: one per word of its text)."""
        record = self._records.get(seq)
        if record is not None:
            record.words += words

    def started(self, seq: int, position_ms: float) -> None:
        record = self._records.get(seq)
        if record is not None and record.status is SegmentStatus.QUEUED:
            record.status = SegmentStatus.PLAYING
            record.start_ms = position_ms

    def add_audio(self, seq: int, audio_ms: float) -> None:
        record = self._records.get(seq)
        if record is not None:
            record.audio_ms += audio_ms

    def sent_fully(self, seq: int) -> None:
        record = self._records.get(seq)
        if record is not None and record.status in (SegmentStatus.QUEUED, SegmentStatus.PLAYING):
            record.status = SegmentStatus.SENT

    def mark_echoed(self, name: str) -> SegmentRecord | None:
        """The record Twilio's echo confirms as heard; None for a mark a `clear` returned, or unknown."""
        if name in self._cleared_marks:
            del self._cleared_marks[name]
            return None
        seq = mark_seq(name)
        record = self._records.get(seq) if seq is not None else None
        if record is None or record.status is not SegmentStatus.SENT:
            return None
        record.status = SegmentStatus.HEARD
        record.heard_ms = record.audio_ms
        record.confirmed = True
        _settle_words(record, len(record.words))
        return record

    def interrupt(self, played_ms: float) -> list[SegmentRecord]:
        """A barge-in at playback position `played_ms`: settle every segment in flight."""
        settled = []
        for record in self._records.values():
            if record.status not in IN_FLIGHT:
                continue
            if record.status is SegmentStatus.SENT and record.seq is not None:
                self._cleared_marks[mark_name(record.seq)] = None
            heard = 0.0 if record.start_ms is None else min(max(played_ms - record.start_ms, 0.0), record.audio_ms)
            record.heard_ms = round(heard, 3)
            # Only Twilio's echo says `heard`. Even a segment the clock says was played to its end
            # stays `partly_heard` (with heard_ms == audio_ms): after a `clear`, a genuine echo and
            # one the clear returned look the same, and the clock runs a little ahead of Twilio.
            if heard > 0:
                record.status = SegmentStatus.PARTLY_HEARD
            else:
                record.status = SegmentStatus.NOT_HEARD
            _settle_words(record, sum(1 for word in record.words if word.offset_ms < heard))
            settled.append(record)
        while len(self._cleared_marks) > self._max:
            self._cleared_marks.popitem(last=False)
        self._settling = settled
        return list(settled)

    def drop_unsegmented(self) -> list[SegmentRecord]:
        """The server dropped the text it had not announced (its `cancelled`, or its stream ended):
        that text was not heard. Returns everything the latest barge-in settled."""
        record = self._unsegmented()
        self._given.drop_all()
        if record is not None:
            record.status = SegmentStatus.NOT_HEARD
            self._drops += 1
            self._add(f"dropped-{self._drops}", record)
            self._settling.append(record)
        return list(self._settling)

    def records(self) -> list[SegmentRecord]:
        unsegmented = self._unsegmented()
        return [*self._records.values(), *([unsegmented] if unsegmented else [])]

    def report(self) -> HeardReport:
        records = self.records()

        def having(*statuses: SegmentStatus) -> list[SegmentRecord]:
            return [r for r in records if r.status in statuses]

        return HeardReport(
            heard=having(SegmentStatus.HEARD),
            partly_heard=having(SegmentStatus.PARTLY_HEARD),
            not_heard=having(SegmentStatus.NOT_HEARD),
            pending=having(*IN_FLIGHT),
        )


def _settle_words(record: SegmentRecord, heard: int) -> None:
    """The first `heard` of the record's words were heard: name them, and the text they end."""
    if not record.words:
        return  # no timings: the record says how much audio was heard, not which words
    words = record.words[:heard]
    record.heard_words = [word.text for word in words]
    end = 0
    for word in words:  # each word is the segment's own text, in order
        found = record.text.find(word.text, end)
        if found >= 0:
            end = found + len(word.text)
    record.heard_text = record.text[:end]
