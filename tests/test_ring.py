"""Tests of the per-stream queues: AudioRing (ms-bounded, backpressure) and Outbox (control lane).

Blocking is shown without timing: a blocked `put`/`get` runs as a task, the loop is given a few
scheduling turns (`asyncio.sleep(0)`), and the task must still be pending; after the unblocking
call it must finish (awaited under `asyncio.wait_for` so a bug fails instead of hanging).
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Awaitable
from typing import Any

import pytest

from stream_server.buffer import AudioRing, Outbox, OutboxOverflow
from stream_server.buffer.outbox import CONTROL_LANE
from stream_server.buffer.ring import CONTROL_SLOTS

# Generous: only reached if the code under test is wrong (a wake-up that never comes).
HANG = 5.0


async def turns(n: int = 5) -> None:
    """Let every ready task run; a scheduling yield, not a timed wait."""
    for _ in range(n):
        await asyncio.sleep(0)


async def blocked(awaitable: Awaitable[Any]) -> asyncio.Task[Any]:
    """Start `awaitable` as a task and check it is still waiting after the loop had its turns."""
    task = asyncio.ensure_future(awaitable)
    await turns()
    assert not task.done(), "expected this call to wait"
    return task


async def finished(task: asyncio.Task[Any]) -> Any:
    return await asyncio.wait_for(task, HANG)


def put_now(ring: AudioRing[Any], item: Any, ms: float = 0.0) -> None:
    """`ring.put` that must complete without waiting: run it one step, synchronously."""
    coro = ring.put(item, ms)
    try:
        coro.send(None)
    except StopIteration:
        return
    coro.close()
    pytest.fail(f"put({item!r}, {ms}) waited for room")


# -- AudioRing ----------------------------------------------------------------------------------


def test_rejects_non_positive_sizes() -> None:
    with pytest.raises(ValueError):
        AudioRing(0, 20)
    with pytest.raises(ValueError):
        AudioRing(100, 0)


def test_slot_count_is_frames_of_capacity_plus_control_slots() -> None:
    assert AudioRing(100, 20).slots == 5 + CONTROL_SLOTS
    assert AudioRing(110, 20).slots == 6 + CONTROL_SLOTS  # rounded up


async def test_fifo_order_with_get_and_pop() -> None:
    ring: AudioRing[str] = AudioRing(1000, 20)
    for i in range(10):
        put_now(ring, f"f{i}", 20)
    assert len(ring) == 10
    assert [await ring.get() for _ in range(5)] == [f"f{i}" for i in range(5)]
    assert [ring.pop() for _ in range(5)] == [f"f{i}" for i in range(5, 10)]
    assert len(ring) == 0


async def test_fifo_order_across_many_wrap_arounds() -> None:
    ring: AudioRing[int] = AudioRing(60, 20)  # 3 + CONTROL_SLOTS slots
    expected: deque[int] = deque()
    rng = random.Random(7)
    for i in range(20 * ring.slots):
        if expected and (len(expected) == ring.slots or rng.random() < 0.5):
            assert ring.pop() == expected.popleft()
        else:
            put_now(ring, i, 0)  # control-weight items: only the slot count bounds them
            expected.append(i)
        assert len(ring) == len(expected)
    while expected:
        assert ring.pop() == expected.popleft()


async def test_pop_from_empty_ring_raises() -> None:
    ring: AudioRing[str] = AudioRing(100, 20)
    with pytest.raises(IndexError):
        ring.pop()


async def test_buffered_ms_accounting() -> None:
    ring: AudioRing[str] = AudioRing(1000, 20)
    assert ring.buffered_ms == 0
    put_now(ring, "a", 20)
    put_now(ring, "start", 0)
    put_now(ring, "b", 12.5)
    assert ring.buffered_ms == pytest.approx(32.5)
    assert ring.pop() == "a"
    assert ring.buffered_ms == pytest.approx(12.5)
    assert ring.pop() == "start"
    assert ring.buffered_ms == pytest.approx(12.5)
    assert ring.pop() == "b"
    assert ring.buffered_ms == 0.0


async def test_buffered_ms_is_exactly_zero_when_empty_despite_float_drift() -> None:
    ring: AudioRing[int] = AudioRing(1000, 0.1)
    for i in range(10):
        put_now(ring, i, 0.1)
    for _ in range(10):
        ring.pop()
    assert ring.buffered_ms == 0.0


async def test_put_waits_at_capacity_and_resumes_after_get() -> None:
    ring: AudioRing[str] = AudioRing(100, 20)
    for i in range(5):
        put_now(ring, f"f{i}", 20)  # exactly 100 ms: still fits
    assert ring.buffered_ms == 100
    assert not ring.producer_waiting

    task = await blocked(ring.put("f5", 20))
    assert ring.producer_waiting
    assert len(ring) == 5

    assert await ring.get() == "f0"
    await finished(task)
    assert not ring.producer_waiting
    assert len(ring) == 5
    assert ring.buffered_ms == 100
    assert [ring.pop() for _ in range(5)] == ["f1", "f2", "f3", "f4", "f5"]


async def test_put_waits_until_enough_room_not_just_any_room() -> None:
    ring: AudioRing[str] = AudioRing(100, 20)
    for i in range(5):
        put_now(ring, f"f{i}", 20)
    task = await blocked(ring.put("big", 50))
    ring.pop()  # 80 ms buffered: 50 more does not fit yet
    await turns()
    assert not task.done()
    assert ring.producer_waiting
    ring.pop()  # 60 ms buffered
    await turns()
    assert not task.done()
    ring.pop()  # 40 ms buffered: fits
    await finished(task)
    assert ring.buffered_ms == 90


async def test_cancelled_put_leaves_ring_unchanged() -> None:
    ring: AudioRing[str] = AudioRing(100, 20)
    for i in range(5):
        put_now(ring, f"f{i}", 20)
    task = await blocked(ring.put("late", 20))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await finished(task)
    assert not ring.producer_waiting
    assert len(ring) == 5
    assert ring.buffered_ms == 100


async def test_item_larger_than_capacity_goes_into_an_empty_ring() -> None:
    ring: AudioRing[str] = AudioRing(100, 20)
    put_now(ring, "huge", 500)
    assert len(ring) == 1
    assert ring.buffered_ms == 500
    # A control item still fits behind it (it weighs nothing) ...
    put_now(ring, "segment_end", 0)
    # ... but nothing with weight fits until the big item is taken.
    task = await blocked(ring.put("next", 1))
    assert ring.pop() == "huge"
    await finished(task)
    assert [ring.pop(), ring.pop()] == ["segment_end", "next"]


async def test_item_larger_than_capacity_waits_for_a_non_empty_ring() -> None:
    ring: AudioRing[str] = AudioRing(100, 20)
    put_now(ring, "small", 10)
    task = await blocked(ring.put("huge", 500))
    ring.pop()
    await finished(task)
    assert ring.buffered_ms == 500


async def test_control_items_fit_when_audio_capacity_is_reached() -> None:
    ring: AudioRing[str] = AudioRing(100, 20)
    for i in range(5):
        put_now(ring, f"f{i}", 20)
    put_now(ring, "segment_end", 0)
    assert len(ring) == 6
    assert ring.buffered_ms == 100


async def test_slot_count_bounds_control_items() -> None:
    ring: AudioRing[int] = AudioRing(100, 20)
    for i in range(ring.slots):
        put_now(ring, i, 0)
    assert len(ring) == ring.slots
    assert ring.buffered_ms == 0

    task = await blocked(ring.put(-1, 0))
    assert ring.producer_waiting
    assert ring.pop() == 0
    await finished(task)
    assert len(ring) == ring.slots
    assert [ring.pop() for _ in range(ring.slots)] == [*range(1, ring.slots), -1]


async def test_full_slots_block_audio_too() -> None:
    ring: AudioRing[int] = AudioRing(100, 20)
    for i in range(ring.slots):
        put_now(ring, i, 0)
    task = await blocked(ring.put(99, 1))  # 1 ms is well within capacity, but no slot is free
    ring.pop()
    await finished(task)


async def test_get_waits_for_a_put() -> None:
    ring: AudioRing[str] = AudioRing(100, 20)
    task = await blocked(ring.get())
    put_now(ring, "x", 20)
    assert await finished(task) == "x"
    assert len(ring) == 0


async def test_clear_drops_everything_and_returns_the_count() -> None:
    ring: AudioRing[str] = AudioRing(100, 20)
    put_now(ring, "start", 0)
    put_now(ring, "a", 20)
    put_now(ring, "b", 20)
    assert ring.clear() == 3
    assert len(ring) == 0
    assert ring.buffered_ms == 0
    with pytest.raises(IndexError):
        ring.pop()
    # Still usable afterwards, in order.
    put_now(ring, "c", 20)
    put_now(ring, "d", 20)
    assert [ring.pop(), ring.pop()] == ["c", "d"]


async def test_clear_of_an_empty_ring_returns_zero() -> None:
    assert AudioRing(100, 20).clear() == 0


async def test_clear_wakes_a_blocked_producer() -> None:
    ring: AudioRing[str] = AudioRing(100, 20)
    for i in range(5):
        put_now(ring, f"f{i}", 20)
    task = await blocked(ring.put("after", 20))
    assert ring.producer_waiting
    assert ring.clear() == 5
    await finished(task)
    assert not ring.producer_waiting
    assert len(ring) == 1
    assert ring.buffered_ms == 20
    assert ring.pop() == "after"


async def test_on_readable_called_after_each_put() -> None:
    ring: AudioRing[str] = AudioRing(100, 20)
    seen: list[int] = []
    ring.on_readable = lambda: seen.append(len(ring))
    put_now(ring, "a", 20)
    put_now(ring, "b", 0)
    assert seen == [1, 2]  # called once per put, after the item is in


# -- Outbox -------------------------------------------------------------------------------------


async def test_outbox_control_lane_before_ring_items() -> None:
    ring: AudioRing[str] = AudioRing(100, 20)
    outbox: Outbox[str] = Outbox()
    outbox.attach(ring)
    put_now(ring, "audio0", 20)
    put_now(ring, "audio1", 20)
    outbox.send_control("ready")
    outbox.send_control("error")
    got = [await asyncio.wait_for(outbox.get(), HANG) for _ in range(4)]
    assert got == ["ready", "error", "audio0", "audio1"]


async def test_outbox_control_sent_later_overtakes_queued_audio() -> None:
    ring: AudioRing[str] = AudioRing(100, 20)
    outbox: Outbox[str] = Outbox()
    outbox.attach(ring)
    for i in range(3):
        put_now(ring, f"audio{i}", 20)
    assert await asyncio.wait_for(outbox.get(), HANG) == "audio0"
    outbox.send_control("cancelled")
    assert await asyncio.wait_for(outbox.get(), HANG) == "cancelled"
    assert await asyncio.wait_for(outbox.get(), HANG) == "audio1"


async def test_outbox_without_ring_serves_control_only() -> None:
    outbox: Outbox[str] = Outbox()
    outbox.send_control("ready")
    assert await asyncio.wait_for(outbox.get(), HANG) == "ready"
    task = await blocked(outbox.get())  # nothing else to read
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await finished(task)


async def test_outbox_get_waits_for_control() -> None:
    outbox: Outbox[str] = Outbox()
    outbox.attach(AudioRing(100, 20))
    task = await blocked(outbox.get())
    outbox.send_control("error")
    assert await finished(task) == "error"


async def test_outbox_get_waits_for_ring_put() -> None:
    ring: AudioRing[str] = AudioRing(100, 20)
    outbox: Outbox[str] = Outbox()
    outbox.attach(ring)
    task = await blocked(outbox.get())
    put_now(ring, "audio", 20)
    assert await finished(task) == "audio"


async def test_outbox_attach_to_a_non_empty_ring_is_readable() -> None:
    ring: AudioRing[str] = AudioRing(100, 20)
    put_now(ring, "early", 20)
    outbox: Outbox[str] = Outbox()
    outbox.attach(ring)
    assert outbox.readable.is_set()
    assert await asyncio.wait_for(outbox.get(), HANG) == "early"


async def test_outbox_get_from_ring_unblocks_the_producer() -> None:
    ring: AudioRing[str] = AudioRing(100, 20)
    outbox: Outbox[str] = Outbox()
    outbox.attach(ring)
    for i in range(5):
        put_now(ring, f"f{i}", 20)
    task = await blocked(ring.put("f5", 20))
    assert await asyncio.wait_for(outbox.get(), HANG) == "f0"
    await finished(task)


async def test_outbox_overflow_after_control_lane_items() -> None:
    outbox: Outbox[int] = Outbox()
    for i in range(CONTROL_LANE):
        outbox.send_control(i)
    with pytest.raises(OutboxOverflow):
        outbox.send_control(CONTROL_LANE)
    # Reading makes room again; the overflowing item was not queued.
    assert await asyncio.wait_for(outbox.get(), HANG) == 0
    outbox.send_control(100)
    got = [await asyncio.wait_for(outbox.get(), HANG) for _ in range(CONTROL_LANE)]
    assert got == [*range(1, CONTROL_LANE), 100]
