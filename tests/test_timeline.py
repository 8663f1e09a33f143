"""Word timings onto the stream's timeline, sans I/O: the placer, the text offsets, the record of
recent words, and the stream core handing alignments out with the audio sent before them."""

from __future__ import annotations

import numpy as np
import pytest

from stream_server.audio import AudioPipeline
from stream_server.audio.formats import FORMATS
from stream_server.audio.seams import SeamSettings
from stream_server.media import EncodedFrame, PcmChunk, WordTiming
from stream_server.protocol import Alignment, Cancelled, ErrorCode, SegmentStart, Warning
from stream_server.providers import tone
from stream_server.session.core import CoreLimits, StreamCore
from stream_server.session.options import StreamOptions
from stream_server.session.planned import Planned
from stream_server.session.spoken import RECENT_WORDS, SpokenWords, TextOffsets
from stream_server.session.timeline import PlacedWord, SegmentPlacer, pending, subsequence_offsets


def timing(text: str, start: int, begin_ms: float, end_ms: float) -> WordTiming:
    step = (end_ms - begin_ms) / len(text)
    return WordTiming(text, start, start + len(text), begin_ms, end_ms, tuple(begin_ms + k * step for k in range(len(text))))


# -- subsequence_offsets ---------------------------------------------------------------------------


def test_offsets_of_the_same_text_are_the_identity() -> None:
    assert subsequence_offsets("Hi there.", "Hi there.") == list(range(9))


def test_offsets_skip_what_the_provider_did_not_get() -> None:
    written = "Hi 🙂 there."
    spoken = "Hi  there."
    offsets = subsequence_offsets(spoken, written)
    assert offsets is not None
    assert "".join(written[i] for i in offsets) == spoken
    assert offsets[3:] == [4, 5, 6, 7, 8, 9, 10]


def test_offsets_of_unrelated_text_are_none() -> None:
    assert subsequence_offsets("abc", "acb") is None


# -- SegmentPlacer -------------------------------------------------------------------------------


def test_words_wait_until_the_sound_starts_and_their_audio_is_in() -> None:
    text = "one two three"
    placer = SegmentPlacer(text, text, text_offset=100)
    placer.add([timing("one", 0, 50, 150), timing("two", 4, 200, 300), timing("three", 8, 350, 500)])
    assert placer.release(10_000) == []  # no sound yet: the trim is not known
    # The segment starts at 1000 ms of the epoch; the shaper dropped 20 ms of leading silence.
    placer.start(1000.0, 20.0)
    first = placer.release(1150.0)  # two starts at 1180
    assert [(w.text, w.start_ms, w.end_ms) for w in first] == [("one", 1030.0, 1130.0)]
    assert (first[0].char_start, first[0].char_end) == (100, 103)
    second = placer.release(1400.0)
    assert [w.text for w in second] == ["two", "three"]  # three starts at 1330
    assert placer.rest(1000.0, 2000.0) == []


def test_a_word_in_dropped_silence_starts_where_the_audio_does() -> None:
    placer = SegmentPlacer("a b", "a b", 0)
    placer.add([timing("a", 0, 0, 40), timing("b", 2, 60, 120)])
    placer.start(500.0, 30.0)  # the provider's first 30 ms are gone: "a" began 30 ms before
    a, b = placer.release(10_000)
    assert (a.start_ms, a.end_ms) == (500.0, 510.0)
    assert all(500.0 <= t <= 510.0 for t in a.char_ms)
    assert b.start_ms == 530.0


def test_the_rest_is_clamped_to_the_segments_sound_and_stays_monotonic() -> None:
    placer = SegmentPlacer("a b c", "a b c", 0)
    # Out of order and past the end: the provider's word timings are not trusted blindly.
    placer.add([timing("a", 0, 100, 200), timing("b", 2, 50, 90), timing("c", 4, 900, 1200)])
    words = placer.rest(0.0, 600.0)
    starts = [w.start_ms for w in words]
    assert starts == sorted(starts)
    assert all(w.start_ms <= w.end_ms <= 600.0 for w in words)
    for word in words:
        assert list(word.char_ms) == sorted(word.char_ms)
        assert all(word.start_ms <= t <= word.end_ms for t in word.char_ms)


def test_words_keep_the_clients_written_form_and_offsets() -> None:
    written = "Hi 🙂 there."
    spoken = "Hi  there."  # emoji taken out for the voice
    placer = SegmentPlacer(spoken, written, text_offset=40)
    placer.add([timing("Hi", 0, 0, 100), timing("there.", 4, 150, 450)])
    placer.start(0.0, 0.0)
    hi, there = placer.release(10_000)
    assert (there.text, there.char_start, there.char_end) == ("there.", 45, 51)
    assert written[there.char_start - 40 : there.char_end - 40] == "there."
    assert len(there.char_ms) == len(there.text)


def test_pending_times_are_relative_to_their_place_in_the_ring() -> None:
    word = PlacedWord("a", 0, 1, 1500.0, 1600.0, (1500.0,))
    item = pending(3, [word], reference_ms=1400.0)
    assert item.seq == 3
    assert (item.words[0].start_ms, item.words[0].end_ms, item.words[0].char_ms) == (100.0, 200.0, (100.0,))


# -- TextOffsets ---------------------------------------------------------------------------------


def test_segments_are_found_in_the_clients_text_and_only_the_held_text_is_kept() -> None:
    offsets = TextOffsets()
    offsets.received("  Hello there. How")
    assert offsets.planned("Hello there.") == 2
    offsets.settle(4)  # the segmenter holds " How"
    offsets.received(" are you?")
    assert offsets.planned("How are you?") == 15
    offsets.settle(0)
    offsets.received("Again.")
    assert offsets.planned("Again.") == 27
    assert offsets.planned("never sent") is None


def test_dropped_text_still_counts_in_the_offsets() -> None:
    offsets = TextOffsets()
    offsets.received("Half a sent")
    offsets.settle(0)  # a cancel: the segmenter dropped it
    offsets.received("New one.")
    assert offsets.planned("New one.") == 11


# -- SpokenWords ---------------------------------------------------------------------------------


def placed(text: str, start: float, end: float, char_start: int) -> PlacedWord:
    return PlacedWord(text, char_start, char_start + len(text), start, end, tuple(start + 10 * k for k in range(len(text))))


def test_alignment_goes_out_on_the_streams_timeline() -> None:
    spoken = SpokenWords("char")
    alignment = spoken.delivered(pending(0, [placed("hey", 10, 50, 0)], 0.0), audio_ms=2000.0)
    assert isinstance(alignment, Alignment)
    assert [(w.text, w.start_ms, w.end_ms) for w in alignment.words] == [("hey", 2010.0, 2050.0)]
    assert alignment.chars is not None
    assert [(c.char, c.start_ms, c.end_ms) for c in alignment.chars] == [
        ("h", 2010.0, 2020.0), ("e", 2020.0, 2030.0), ("y", 2030.0, 2050.0),
    ]  # fmt: skip


def test_words_only_without_chars_and_nothing_with_none() -> None:
    words_only = SpokenWords("word").delivered(pending(0, [placed("hey", 10, 50, 0)], 0.0), 0.0)
    assert words_only is not None and words_only.chars is None
    assert SpokenWords("none").delivered(pending(0, [placed("hey", 10, 50, 0)], 0.0), 0.0) is None


def test_cancel_names_the_last_word_sent_and_heard() -> None:
    spoken = SpokenWords("none")  # recorded even when not sent
    spoken.delivered(pending(0, [placed("one", 0, 80, 0), placed("two", 100, 180, 4)], 0.0), 0.0)
    spoken.delivered(pending(1, [placed("three", 0, 90, 8)], 0.0), 300.0)
    reply = spoken.cancelled(audio_ms=320.0, played_ms=150.0)
    assert isinstance(reply, Cancelled)
    assert reply.last_sent is not None and (reply.last_sent.text, reply.last_sent.seq) == ("three", 1)
    assert reply.last_heard is not None and (reply.last_heard.text, reply.last_heard.char_end) == ("two", 7)
    assert spoken.cancelled(audio_ms=320.0, played_ms=None).last_heard is None
    assert spoken.cancelled(audio_ms=320.0, played_ms=0.0).last_heard is None  # nothing played yet


def test_the_record_of_recent_words_is_bounded() -> None:
    spoken = SpokenWords("none")
    for i in range(RECENT_WORDS * 3):
        spoken.delivered(pending(i, [placed("w", 0, 1, i)], 0.0), float(i))
    assert len(spoken._recent) == RECENT_WORDS
    reply = spoken.cancelled(audio_ms=1e9, played_ms=1.0)
    assert reply.last_heard is None  # older than the stream remembers
    assert reply.last_sent is not None and reply.last_sent.seq == RECENT_WORDS * 3 - 1


# -- the stream core -----------------------------------------------------------------------------


def options(**overrides: object) -> StreamOptions:
    base: dict[str, object] = {
        "provider": "tone", "voice": "beep", "format": FORMATS["pcm"], "sample_rate": 24000, "frame_ms": 20,
        "speed": 1.0, "max_lead_ms": 0, "provider_timestamps": True,
    }  # fmt: skip
    base.update(overrides)
    return StreamOptions(**base)  # type: ignore[arg-type]


def drain(core: StreamCore) -> list[object]:
    out = []
    while (item := core.next_output(0.0)) is not None:
        assert not isinstance(item, float)
        out.append(item)
        core.sent(item, 0.0)  # type: ignore[arg-type]
    return out


def test_core_times_alignments_by_the_audio_sent_before_them() -> None:
    core = StreamCore(options(timestamps="word"), CoreLimits(ring_ms=10_000, max_pending_chars=1000), 0.0)
    core.text("Hi there. ", 0.0)
    planned = core.next_segment(core.epoch)
    assert isinstance(planned, Planned) and planned.text_offset == 0
    frame = EncodedFrame(b"\0\0" * 480, 20.0)
    core.produce(core.epoch, SegmentStart(0, "Hi there."))
    for _ in range(3):
        core.produce(core.epoch, frame, 20.0)
    core.produce(core.epoch, pending(0, [placed("there.", 5, 50, 3)], 0.0))
    core.produce(core.epoch, frame, 20.0)
    out = drain(core)
    (alignment,) = [o for o in out if isinstance(o, Alignment)]
    assert alignment.words[0].start_ms == 65.0  # 60 ms of audio went before it
    assert out.index(alignment) == len(out) - 2  # before the audio it describes


def test_core_warns_once_when_the_provider_gives_no_timings() -> None:
    core = StreamCore(
        options(timestamps="char", provider_timestamps=False), CoreLimits(ring_ms=1000, max_pending_chars=100), 0.0
    )
    warnings = [o for o in drain(core) if isinstance(o, Warning)]
    assert [w.code for w in warnings] == [ErrorCode.TIMESTAMPS_UNAVAILABLE]
    quiet = StreamCore(options(timestamps="none", provider_timestamps=False), CoreLimits(1000, 100), 0.0)
    assert not [o for o in drain(quiet) if isinstance(o, Warning)]


# -- exact with the tone provider through the real audio pipeline ---------------------------------


@pytest.mark.parametrize("rate", [24000, 16000, 48000])
def test_tone_words_land_on_their_beeps_through_the_pipeline(rate: int) -> None:
    """The synthesis' placement arithmetic with the real pipeline: a pause, a silent lead that the
    shaper trims, resampling; each word's start must be where its beep starts in the output."""
    pipeline = AudioPipeline(FORMATS["pcm"], rate, 20, seams=SeamSettings(max_leading_silence_ms=30.0))
    text = "alpha beta gamma delta"
    timings = tone.word_timings(text)
    lead_ms = 100.0  # silence the provider puts first: 70 ms of it is trimmed
    lead = np.zeros(int(tone.SAMPLE_RATE * lead_ms / 1000), dtype=np.float32)
    shifted = [
        WordTiming(t.text, t.char_start, t.char_end, t.start_ms + lead_ms, t.end_ms + lead_ms, tuple(c + lead_ms for c in t.char_ms))
        for t in timings
    ]  # fmt: skip
    pcm = bytearray()
    for frame in pipeline.pause(250.0):
        pcm += frame.data
    base = pipeline.position_ms
    placer = SegmentPlacer(text, text, 0)
    placer.add(shifted)
    placed_words: list[PlacedWord] = []
    chunks = [lead] + [np.asarray(tone._beep(t.text, 440.0, 1.0)) for t in timings]
    for samples in chunks:
        for frame in pipeline.push(PcmChunk(samples, tone.SAMPLE_RATE)):
            pcm += frame.data
        if not placer.started and (trimmed := pipeline.trimmed_ms) is not None:
            placer.start(base, trimmed)
        placed_words += placer.release(pipeline.position_ms)
    for frame in pipeline.end_segment(0.0):
        pcm += frame.data
    placed_words += placer.rest(base, pipeline.sound_end_ms)
    assert [w.text for w in placed_words] == text.split()
    samples = np.frombuffer(bytes(pcm), dtype="<i2").astype(np.float32) / 32768.0
    onsets = beep_onsets_ms(samples, rate)
    assert len(onsets) == len(placed_words)
    for word, onset in zip(placed_words, onsets, strict=True):
        assert abs(word.start_ms - onset) < 2.0, (word, onset)


def beep_onsets_ms(samples: np.ndarray, rate: int, threshold: float = 0.01) -> list[float]:
    """Where each beep starts: the first loud sample after at least 10 ms of quiet."""
    loud = np.flatnonzero(np.abs(samples) > threshold)
    quiet = rate // 100
    return [1000.0 * i / rate for k, i in enumerate(loud) if k == 0 or i - loud[k - 1] > quiet]
