"""A fixed number of worker threads serving one queue: urgent jobs first, then look-ahead.

Piper's inference is CPU-bound and runs on a couple of threads shared by every stream. In plain
FIFO order the look-ahead of streams already playing delays a new stream's first audio; here a
job whose audio someone is waiting for (`Urgency`, read each time a worker picks its next job, so
a look-ahead job promoted while it waits moves up) goes before look-ahead work.

Urgent jobs go in the order their listeners started waiting: a promoted job counts from its
promotion, not from its submission, so a stream whose next segment just became due does not
overtake new streams already waiting for their first audio. Look-ahead jobs go in submission
order. Within one stream that is FIFO: its jobs are submitted in order, and only its earliest
unfinished segment is ever urgent.

Each submission hands the executor one turn of a worker; a turn runs whichever queued job is the
most urgent at that moment. So there are always at least as many turns as queued jobs, and a job
cancelled while queued just leaves a turn with nothing to do.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from .base import Urgency, next_tick

T = TypeVar("T")


@dataclass(eq=False, slots=True)
class _Queued:
    order: int
    """Its submission's `next_tick()`."""
    urgency: Urgency | None
    run: Callable[[], Any]
    future: Future[Any]

    def rank(self) -> tuple[int, int, int]:
        """Smallest first: (0 urgent | 1 look-ahead, waiting since, submission order)."""
        if self.urgency is None:
            # The caller did not say: someone is waiting (see VoiceOptions.urgency).
            return 0, self.order, self.order
        since = self.urgency.since
        if since is None:
            return 1, self.order, self.order
        return 0, max(since, self.order), self.order


class PriorityPool:
    def __init__(self, workers: int, *, thread_name_prefix: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=thread_name_prefix)
        self._lock = threading.Lock()
        # Bounded by the jobs that can be waiting at once: each stream's synthesis tasks (at most
        # lookahead + 1, max_streams streams) wait for one job each. Small enough that picking the
        # next job by a scan costs nothing next to an inference, and a scan sees promotions that a
        # heap ordered at submission would not.
        self._queued: list[_Queued] = []
        self._in_flight = 0
        self._started = 0
        self._closed = False

    def submit(self, run: Callable[[], T], urgency: Urgency | None) -> Future[T]:
        """Queue `run`; cancelling the returned future before a worker starts it drops the job."""
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the pool is shut down")
            job = _Queued(next_tick(), urgency, run, future)
            self._in_flight += 1
            self._queued.append(job)
            self._executor.submit(self._run_most_urgent)
        future.add_done_callback(lambda _: self._finished(job))
        return future

    def _run_most_urgent(self) -> None:
        with self._lock:
            while True:
                if not self._queued:
                    return
                job = min(self._queued, key=_Queued.rank)
                self._queued.remove(job)
                if job.future.set_running_or_notify_cancel():
                    self._started += 1
                    break
        try:
            result = job.run()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller, as an executor does
            job.future.set_exception(exc)
        else:
            job.future.set_result(result)

    def _finished(self, job: _Queued) -> None:
        # Run, failed, or cancelled while queued: a cancelled job leaves the queue at once, so
        # nothing of a closed stream (its text, its generator) stays referenced here.
        with self._lock:
            self._in_flight -= 1
            if job in self._queued:
                self._queued.remove(job)

    def shutdown(self) -> None:
        """Drops the queued jobs (their futures are cancelled) and waits for the running ones."""
        with self._lock:
            self._closed = True
            dropped, self._queued = self._queued, []
        for job in dropped:
            job.future.cancel()
        self._executor.shutdown(wait=True, cancel_futures=True)

    @property
    def in_flight(self) -> int:
        """Jobs submitted and not finished (queued or running)."""
        return self._in_flight

    @property
    def started(self) -> int:
        return self._started
