"""A fixed number of worker threads serving one queue, in the order `FairQueue` decides.

Piper's inference is CPU-bound and runs on a couple of threads shared by every stream of every
user. The order (`fair_queue.py`) shares inference time fairly between API keys, then between the
streams of a key; within a key, a job whose audio someone is waiting for (`Urgency`, read each time
a worker picks its next job, so a look-ahead job promoted while it waits moves up) goes before
look-ahead work, so a new stream's first audio does not wait behind the same key's other streams'
next segments. Each job's wall-clock time is what its key and stream are charged.

Each submission hands the executor one turn of a worker; a turn runs whichever queued job comes
next at that moment. So there are always at least as many turns as queued jobs, and a job
cancelled while queued just leaves a turn with nothing to do.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from .base import Share, Urgency, next_tick
from .fair_queue import ANONYMOUS_SHARE, Entry, FairQueue

T = TypeVar("T")

_Job = tuple[Callable[[], Any], "Future[Any]"]


class PriorityPool:
    def __init__(self, workers: int, *, thread_name_prefix: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=thread_name_prefix)
        self._lock = threading.Lock()
        # Bounded by the jobs that can be waiting at once: each stream's synthesis tasks (at most
        # lookahead + 1, max_streams streams) wait for one job each. Small enough that picking the
        # next job by a scan costs nothing next to an inference, and a scan sees promotions that a
        # heap ordered at submission would not.
        self._queue: FairQueue[_Job] = FairQueue()
        self._in_flight = 0
        self._started = 0
        self._closed = False

    def submit(self, run: Callable[[], T], urgency: Urgency | None, share: Share | None = None) -> Future[T]:
        """Queue `run` as `share`'s work; cancelling the returned future before a worker starts
        it drops the job."""
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the pool is shut down")
            entry: Entry[_Job] = Entry(next_tick(), urgency, share or ANONYMOUS_SHARE, (run, future))
            self._in_flight += 1
            self._queue.push(entry)
            self._executor.submit(self._run_next)
        future.add_done_callback(lambda _: self._finished(entry))
        return future

    def _run_next(self) -> None:
        with self._lock:
            while True:
                entry = self._queue.pop()
                if entry is None:
                    return
                run, future = entry.job
                if future.set_running_or_notify_cancel():
                    self._started += 1
                    break
                self._queue.finished(entry, 0.0)
        started = time.perf_counter()
        try:
            result = run()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller, as an executor does
            outcome: tuple[Any, BaseException | None] = (None, exc)
        else:
            outcome = (result, None)
        # Charged before the caller hears of it, so its next job is ranked with this one counted.
        with self._lock:
            self._queue.finished(entry, time.perf_counter() - started)
        if outcome[1] is not None:
            future.set_exception(outcome[1])
        else:
            future.set_result(outcome[0])

    def _finished(self, entry: Entry[_Job]) -> None:
        # Run, failed, or cancelled while queued: a cancelled job leaves the queue at once, so
        # nothing of a closed stream (its text, its generator) stays referenced here.
        with self._lock:
            self._in_flight -= 1
            self._queue.remove(entry)

    def shutdown(self) -> None:
        """Drops the queued jobs (their futures are cancelled) and waits for the running ones."""
        with self._lock:
            self._closed = True
            dropped = self._queue.drain()
        for entry in dropped:
            entry.job[1].cancel()
        self._executor.shutdown(wait=True, cancel_futures=True)

    def others_waiting(self, share: Share | None) -> bool:
        """Whether work of another stream (of any key) is queued: a job running for `share` may
        then make less at once, so that the other gets its turn sooner."""
        with self._lock:
            return self._queue.others_queued(share or ANONYMOUS_SHARE)

    @property
    def in_flight(self) -> int:
        """Jobs submitted and not finished (queued or running)."""
        return self._in_flight

    @property
    def started(self) -> int:
        return self._started
