"""Tests of the per-stream ring (sans I/O): bounded in ms of audio and in slots, FIFO, `fits` says
when its writer must wait. The waiting itself is the runner's (tests/test_stream_core.py and the
live-server backpressure tests)."""

from __future__ import annotations

import random
from collections import deque

import pytest

from stream_server.buffer import AudioRing
from stream_server.buffer.ring import CONTROL_SLOTS


def test_rejects_non_positive_sizes() -> None:
    with pytest.raises(ValueError):
        AudioRing(0, 20)
    with pytest.raises(ValueError):
        AudioRing(100, 0)


def test_slot_count_is_frames_of_capacity_plus_control_slots() -> None:
    assert AudioRing(100, 20).slots == 5 + CONTROL_SLOTS
    assert AudioRing(110, 20).slots == 6 + CONTROL_SLOTS  # rounded up


def test_fifo_order() -> None:
    ring: AudioRing[str] = AudioRing(1000, 20)
    for i in range(10):
        ring.push(f"f{i}", 20)
    assert len(ring) == 10
    assert ring.peek() == "f0" and len(ring) == 10
    assert [ring.pop() for _ in range(10)] == [f"f{i}" for i in range(10)]
    assert len(ring) == 0


def test_fifo_order_with_random_interleaving_up_to_the_slot_bound() -> None:
    ring: AudioRing[int] = AudioRing(60, 20)  # 3 + CONTROL_SLOTS slots
    expected: deque[int] = deque()
    rng = random.Random(7)
    for i in range(20 * ring.slots):
        if expected and (not ring.fits(0) or rng.random() < 0.5):
            assert ring.pop() == expected.popleft()
        else:
            ring.push(i, 0)  # control-weight items: only the slot count bounds them
            expected.append(i)
        assert len(ring) == len(expected) <= ring.slots
    while expected:
        assert ring.pop() == expected.popleft()


def test_pop_from_an_empty_ring_raises() -> None:
    with pytest.raises(IndexError):
        AudioRing[str](100, 20).pop()


def test_buffered_ms_accounting() -> None:
    ring: AudioRing[str] = AudioRing(1000, 20)
    assert ring.buffered_ms == 0
    ring.push("a", 20)
    ring.push("start", 0)
    ring.push("b", 12.5)
    assert ring.buffered_ms == pytest.approx(32.5)
    assert ring.pop() == "a"
    assert ring.buffered_ms == pytest.approx(12.5)
    assert ring.pop() == "start"
    assert ring.buffered_ms == pytest.approx(12.5)
    assert ring.pop() == "b"
    assert ring.buffered_ms == 0.0


def test_buffered_ms_is_exactly_zero_when_empty_despite_float_drift() -> None:
    ring: AudioRing[int] = AudioRing(1000, 0.1)
    for i in range(10):
        ring.push(i, 0.1)
    for _ in range(10):
        ring.pop()
    assert ring.buffered_ms == 0.0


def test_audio_fits_up_to_the_capacity_and_no_further() -> None:
    ring: AudioRing[str] = AudioRing(100, 20)
    for i in range(5):
        assert ring.fits(20)
        ring.push(f"f{i}", 20)
    assert not ring.fits(20) and not ring.fits(0.5)
    with pytest.raises(OverflowError):
        ring.push("f5", 20)
    ring.pop()
    assert ring.fits(20) and not ring.fits(21)


def test_an_item_larger_than_the_capacity_goes_into_an_empty_ring_only() -> None:
    ring: AudioRing[str] = AudioRing(100, 20)
    ring.push("small", 10)
    assert not ring.fits(500)
    ring.pop()
    assert ring.fits(500)
    ring.push("huge", 500)
    assert ring.buffered_ms == 500
    # A control item still fits behind it (it weighs nothing) ...
    assert ring.fits(0)
    ring.push("segment_end", 0)
    # ... but nothing with weight fits until the big item is taken.
    assert not ring.fits(1)
    assert ring.pop() == "huge"
    assert ring.fits(1)


def test_control_items_fit_when_the_audio_capacity_is_reached() -> None:
    ring: AudioRing[str] = AudioRing(100, 20)
    for i in range(5):
        ring.push(f"f{i}", 20)
    assert ring.fits(0)
    ring.push("segment_end", 0)
    assert len(ring) == 6 and ring.buffered_ms == 100


def test_the_slot_count_bounds_control_items_and_audio_alike() -> None:
    ring: AudioRing[int] = AudioRing(100, 20)
    for i in range(ring.slots):
        ring.push(i, 0)
    assert len(ring) == ring.slots and ring.buffered_ms == 0
    assert not ring.fits(0)
    assert not ring.fits(1)  # 1 ms is well within capacity, but no slot is free
    assert ring.pop() == 0
    assert ring.fits(0)


def test_clear_drops_everything_and_returns_the_count() -> None:
    ring: AudioRing[str] = AudioRing(100, 20)
    assert ring.clear() == 0
    for i in range(5):
        ring.push(f"f{i}", 20)
    ring.push("end", 0)
    assert ring.clear() == 6
    assert len(ring) == 0 and ring.buffered_ms == 0
    assert ring.fits(100)
