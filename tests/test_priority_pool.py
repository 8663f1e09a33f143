"""The order in which Piper's inference pool runs jobs: urgent first, promotions, cancellation.

One worker is held busy on an event while jobs queue behind it, then released; each job records
its name when it runs, so the order is checked exactly, with no timing involved.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import CancelledError, Future, wait
from typing import Any

import pytest

from stream_server.providers.base import Urgency
from stream_server.providers.priority_pool import PriorityPool

TIMEOUT_S = 10.0


class Recorder:
    def __init__(self) -> None:
        self.order: list[str] = []
        self._lock = threading.Lock()

    def job(self, name: str) -> Callable[[], str]:
        def run() -> str:
            with self._lock:
                self.order.append(name)
            return name

        return run


@pytest.fixture
def pool() -> Iterator[PriorityPool]:
    pool = PriorityPool(1, thread_name_prefix="test-pool")
    yield pool
    pool.shutdown()


def hold_worker(pool: PriorityPool) -> tuple[threading.Event, Future[None]]:
    """The single worker, busy until the returned event is set."""
    started, release = threading.Event(), threading.Event()

    def blocker() -> None:
        started.set()
        assert release.wait(TIMEOUT_S), "the test never released the worker"

    future = pool.submit(blocker, None)
    assert started.wait(TIMEOUT_S)
    return release, future


def finish(futures: Iterable[Future[Any]]) -> None:
    _, pending = wait(futures, timeout=TIMEOUT_S)
    assert not pending


def look_ahead() -> Urgency:
    return Urgency(urgent=False)


def urgent() -> Urgency:
    return Urgency(urgent=True)


def test_urgent_jobs_run_before_look_ahead_then_in_submission_order(pool: PriorityPool) -> None:
    recorder = Recorder()
    release, blocker = hold_worker(pool)
    # Two streams playing queue their next segments; then two new streams' first segments.
    futures = [
        pool.submit(recorder.job("A2 look-ahead"), look_ahead()),
        pool.submit(recorder.job("B2 look-ahead"), look_ahead()),
        pool.submit(recorder.job("C1 first"), urgent()),
        pool.submit(recorder.job("A3 look-ahead"), look_ahead()),
        pool.submit(recorder.job("D1 first"), urgent()),
        pool.submit(recorder.job("no urgency given"), None),
    ]
    release.set()
    finish([*futures, blocker])
    assert recorder.order == [
        "C1 first",
        "D1 first",
        "no urgency given",
        "A2 look-ahead",
        "B2 look-ahead",
        "A3 look-ahead",
    ]
    assert [f.result() for f in futures[:2]] == ["A2 look-ahead", "B2 look-ahead"]


def test_a_look_ahead_job_promoted_while_queued_goes_after_those_already_waiting(pool: PriorityPool) -> None:
    recorder = Recorder()
    release, blocker = hold_worker(pool)
    a2, b2 = look_ahead(), look_ahead()
    futures = [
        pool.submit(recorder.job("A2"), a2),
        pool.submit(recorder.job("B2"), b2),
        pool.submit(recorder.job("C1"), urgent()),
    ]
    # B's first segment is out while C already waits: B2 is due now, after C1, before A2.
    b2.promote()
    futures.append(pool.submit(recorder.job("D1"), urgent()))
    release.set()
    finish([*futures, blocker])
    assert recorder.order == ["C1", "B2", "D1", "A2"]


def test_a_job_cancelled_while_queued_never_runs_and_leaves_nothing_counted(pool: PriorityPool) -> None:
    recorder = Recorder()
    release, blocker = hold_worker(pool)
    kept = pool.submit(recorder.job("kept"), look_ahead())
    dropped = pool.submit(recorder.job("dropped"), urgent())
    assert pool.in_flight == 3
    assert dropped.cancel()
    assert pool.in_flight == 2
    release.set()
    finish([kept, blocker])
    assert recorder.order == ["kept"]
    assert pool.in_flight == 0
    assert pool.started == 2


def test_an_exception_reaches_the_caller_and_the_worker_goes_on(pool: PriorityPool) -> None:
    def fails() -> str:
        raise ValueError("no phonemes")

    failed = pool.submit(fails, urgent())
    with pytest.raises(ValueError, match="no phonemes"):
        failed.result(TIMEOUT_S)
    assert pool.submit(Recorder().job("next"), urgent()).result(TIMEOUT_S) == "next"
    assert pool.in_flight == 0


def test_shutdown_drops_queued_jobs_and_refuses_new_ones() -> None:
    pool = PriorityPool(1, thread_name_prefix="test-pool")
    recorder = Recorder()
    release, blocker = hold_worker(pool)
    queued = pool.submit(recorder.job("queued"), urgent())
    shutting_down = threading.Thread(target=pool.shutdown)
    shutting_down.start()
    with pytest.raises(CancelledError):
        queued.result(TIMEOUT_S)
    release.set()
    shutting_down.join(TIMEOUT_S)
    assert not shutting_down.is_alive()
    assert blocker.done() and recorder.order == []
    assert pool.in_flight == 0
    with pytest.raises(RuntimeError):
        pool.submit(recorder.job("late"), urgent())


def test_two_workers_run_two_jobs_at_once_and_no_more() -> None:
    pool = PriorityPool(2, thread_name_prefix="test-pool")
    try:
        first_release, first = hold_worker(pool)
        second_release, second = hold_worker(pool)
        recorder = Recorder()
        third = pool.submit(recorder.job("third"), urgent())
        # Both workers are held: the third job is still queued, so it can be cancelled.
        assert pool.started == 2
        assert third.cancel()
        first_release.set()
        second_release.set()
        finish([first, second])
        assert recorder.order == []
    finally:
        pool.shutdown()
