"""The fair share of Piper's inference workers, without threads: jobs are pushed, popped and
charged a duration by hand, and the order they come out in is checked."""

from __future__ import annotations

from collections import Counter

from stream_server.providers.base import Share, Urgency, next_tick
from stream_server.providers.fair_queue import ANONYMOUS_SHARE, MAX_IDLE, Entry, FairQueue


def job(queue: FairQueue[str], key: str, stream: str, name: str, urgent: bool | None = True) -> Entry[str]:
    urgency = None if urgent is None else Urgency(urgent=urgent)
    entry = Entry(next_tick(), urgency, Share(key, stream), name)
    queue.push(entry)
    return entry


def run(queue: FairQueue[str], seconds: float = 1.0) -> str:
    """One worker's turn: the next job runs for `seconds`."""
    entry = queue.pop()
    assert entry is not None
    queue.finished(entry, seconds)
    return entry.job


def test_a_newcomer_runs_next_although_the_other_key_queued_much_earlier() -> None:
    queue: FairQueue[str] = FairQueue()
    for stream in range(20):
        for seq in range(3):
            job(queue, "alice", f"a{stream}", f"alice {stream}.{seq}")
    running = queue.pop()  # a worker is busy with one of alice's jobs when bob comes
    assert running is not None
    job(queue, "bob", "b0", "bob 0.0")
    queue.finished(running, 1.0)
    assert run(queue) == "bob 0.0"


def test_a_newcomer_goes_before_the_key_whose_job_is_running_on_the_other_worker() -> None:
    queue: FairQueue[str] = FairQueue()
    for seq in range(3):
        job(queue, "alice", "a0", f"alice {seq}")
    first = queue.pop()  # worker 1, not charged yet
    job(queue, "bob", "b0", "bob")
    second = queue.pop()  # worker 2
    assert first is not None and second is not None
    assert (first.job, second.job) == ("alice 0", "bob")


def test_keys_share_the_time_equally_whatever_their_number_of_streams() -> None:
    queue: FairQueue[str] = FairQueue()
    served: Counter[str] = Counter()
    for stream in range(10):
        job(queue, "alice", f"a{stream}", "alice")
    job(queue, "bob", "b0", "bob")
    for _ in range(100):
        name = run(queue)
        served[name] += 1
        # Every stream always has its next job queued (a client streaming without end).
        job(queue, name, f"{name[0]}{served[name] % 10 if name == 'alice' else 0}", name)
    assert served == {"alice": 50, "bob": 50}


def test_time_is_what_is_shared_not_turns() -> None:
    queue: FairQueue[str] = FairQueue()
    job(queue, "alice", "a0", "alice")
    job(queue, "bob", "b0", "bob")
    served: Counter[str] = Counter()
    for _ in range(30):
        entry = queue.pop()
        assert entry is not None
        # Bob's jobs take twice as long (slower speed, longer sentences): he gets half the turns.
        queue.finished(entry, 2.0 if entry.job == "bob" else 1.0)
        served[entry.job] += 1
        job(queue, entry.job, entry.share.stream, entry.job)
    assert served == {"alice": 20, "bob": 10}


def test_a_clients_urgency_does_not_cross_to_another_key() -> None:
    queue: FairQueue[str] = FairQueue()
    for seq in range(3):
        job(queue, "alice", f"a{seq}", f"alice urgent {seq}")
    running = queue.pop()
    assert running is not None
    job(queue, "bob", "b0", "bob look-ahead", urgent=False)
    queue.finished(running, 5.0)
    # Bob started level with alice, who has used 5 s since: he goes first although his job is
    # look-ahead and hers are urgent (max_lead_ms: 0 makes every job of a client urgent).
    assert run(queue) == "bob look-ahead"
    assert [run(queue), run(queue)] == ["alice urgent 1", "alice urgent 2"]


def test_within_a_key_urgent_jobs_go_first_in_the_order_listeners_started_waiting() -> None:
    queue: FairQueue[str] = FairQueue()
    a2, b2 = Urgency(), Urgency()
    for name, stream, urgency in [("A2", "A", a2), ("B2", "B", b2)]:
        queue.push(Entry(next_tick(), urgency, Share("app", stream), name))
    job(queue, "app", "C", "C1")
    b2.promote()
    job(queue, "app", "D", "D1")
    assert [run(queue, 0.0) for _ in range(4)] == ["C1", "B2", "D1", "A2"]


def test_within_a_key_the_least_served_stream_goes_first_among_equally_urgent_jobs() -> None:
    queue: FairQueue[str] = FairQueue()
    for seq in range(4):
        job(queue, "alice", "long", f"long {seq}")
    assert [run(queue, 3.0) for _ in range(2)] == ["long 0", "long 1"]
    for seq in range(4):
        job(queue, "alice", "short", f"short {seq}")
    # The new stream starts from the clock, where the long one's last job started (3 s), not from
    # zero: it catches up those 3 s, then they alternate (a tie goes to the job waiting longest).
    assert [run(queue, 1.0) for _ in range(6)] == ["short 0", "short 1", "short 2", "long 2", "short 3", "long 3"]


def test_idle_time_is_not_banked() -> None:
    queue: FairQueue[str] = FairQueue()
    for seq in range(10):
        job(queue, "alice", "a0", f"alice {seq}")
    for _ in range(5):
        run(queue)
    # Bob was idle for alice's 5 s; he starts where her last job started (4 s), not at zero, so
    # after one turn to catch up they alternate.
    job(queue, "bob", "b0", "bob 0")
    job(queue, "bob", "b0", "bob 1")
    assert [run(queue) for _ in range(4)] == ["bob 0", "alice 5", "bob 1", "alice 6"]


def test_a_key_whose_one_stream_goes_idle_between_jobs_keeps_its_lead() -> None:
    queue: FairQueue[str] = FairQueue()
    for seq in range(6):
        job(queue, "alice", "a0", f"alice {seq}")
    job(queue, "bob", "b0", "bob 0")
    order = []
    for _ in range(5):
        entry = queue.pop()
        assert entry is not None
        # Bob's pieces are submitted one after another, each when the one before is done, and
        # each takes 3 s; alice's take 1 s. Between two of his jobs bob has nothing queued.
        queue.finished(entry, 3.0 if entry.job.startswith("bob") else 1.0)
        order.append(entry.job)
        if entry.job.startswith("bob"):
            job(queue, "bob", "b0", f"bob {len([o for o in order if o.startswith('bob')])}")
    assert order == ["alice 0", "bob 0", "alice 1", "alice 2", "alice 3"]
    assert queue.accounts == 4  # two keys, one stream each: nothing else is held


def test_idle_accounts_are_forgotten_once_the_others_catch_up() -> None:
    queue: FairQueue[str] = FairQueue()
    job(queue, "alice", "a0", "alice 0")
    job(queue, "alice", "a0", "alice 1")
    job(queue, "bob", "b0", "bob 0")
    assert run(queue, 1.0) == "alice 0"
    assert run(queue, 3.0) == "bob 0"  # bob is idle now, ahead: his key's account stays
    assert queue.accounts == 3
    job(queue, "alice", "a0", "alice 2")
    assert run(queue, 1.0) == "alice 1"
    assert run(queue, 1.0) == "alice 2"  # the clock is at alice's 2 s; bob's 3 s is still ahead
    assert queue.accounts == 2  # both keys idle and ahead of the clock; no stream is kept
    job(queue, "alice", "a0", "alice 3")
    assert run(queue, 1.0) == "alice 3"  # picked at 3 s: bob has caught up, his account goes
    assert queue.accounts == 1 and queue.active == {}


def test_accounts_last_only_while_a_key_has_work_queued_or_running() -> None:
    queue: FairQueue[str] = FairQueue()
    kept = job(queue, "alice", "a0", "kept")
    dropped = job(queue, "bob", "b0", "dropped")
    assert queue.active == {"alice": 1, "bob": 1}
    assert queue.remove(dropped) and not queue.remove(dropped)
    assert queue.active == {"alice": 1}
    entry = queue.pop()
    assert entry is kept and len(queue) == 0
    assert queue.active == {"alice": 1}  # running
    queue.finished(entry, 1.0)
    assert queue.active == {} and queue.pop() is None


def test_work_without_a_share_is_one_anonymous_stream_in_submission_order() -> None:
    queue: FairQueue[str] = FairQueue()
    for name in ["first", "second"]:
        queue.push(Entry(next_tick(), None, ANONYMOUS_SHARE, name))
    assert [run(queue), run(queue)] == ["first", "second"]


def test_drain_takes_every_queued_job_and_leaves_the_running_one_counted() -> None:
    queue: FairQueue[str] = FairQueue()
    for stream in ["a0", "a1"]:
        job(queue, "alice", stream, stream)
    job(queue, "bob", "b0", "b0")
    running = queue.pop()
    assert running is not None
    assert sorted(e.job for e in queue.drain()) == sorted({"a0", "a1", "b0"} - {running.job})
    assert len(queue) == 0 and queue.active == {running.share.key: 1}
    queue.finished(running, 1.0)
    assert queue.active == {}


def test_idle_accounts_ahead_of_the_clock_are_bounded() -> None:
    queue: FairQueue[str] = FairQueue()
    job(queue, "alice", "keeps-the-key-active", "queued all along", urgent=False)
    # Two thousand short-lived streams, each one job that leaves it ahead of the clock.
    for n in range(2000):
        job(queue, "alice", f"s{n}", f"s{n}")
        assert run(queue, 10.0) == f"s{n}"
    assert queue.accounts <= 2 + MAX_IDLE
    assert queue.active == {"alice": 1}
