"""Which queued inference runs next: a fair share per API key, then per stream, urgency within a key.

Sans I/O: the pool (`priority_pool.py`) calls `push`, `pop`, `finished` and `remove` under its lock
and measures the time; nothing here waits, sleeps or reads a clock, so the policy is tested by
feeding it jobs and durations.

The policy (start-time fair queuing on inference time):

- Each active key has `used`: the inference seconds its jobs have taken. The next job comes from
  the key with the least `used` that has a job queued. So keys share the workers equally whatever
  their number of streams, and a key's urgency (which a client can raise at will, e.g. with
  `max_lead_ms: 0`) buys it nothing against other keys.
- A key that becomes active (a job queued, none queued or running before) starts from the
  virtual clock: the `used` its last job's key had when that job was picked (the start tag of
  start-time fair queuing), which is never ahead of the active keys. So time spent idle is not
  banked as credit, but a key that ran ahead keeps its lead: a key whose one stream submits one
  job at a time goes idle between its jobs. An idle account is kept only while it is ahead of the
  clock (for at most about one job's time), so the state is the active keys and streams plus the
  few that ran ahead lately, and never more than `MAX_IDLE` of those.
- Within a key: urgent jobs (a listener waits for them now) before look-ahead, as the pool always
  did; among the streams with a job of that class, the one that has used the least time, by the
  same rule one level down; within a stream, urgent jobs in the order their listeners started
  waiting, then submission order (`Urgency.since`).
- Ties (a key or stream that just started from the minimum) go to the one with fewer jobs running,
  then to the job waiting longest: a newcomer goes before the key whose job is running now, since
  that job has not been charged yet.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .base import Share, Urgency

T = TypeVar("T")

ANONYMOUS_SHARE = Share(key="anonymous", stream="anonymous")
"""The share of work submitted without one (one stream of an anonymous key)."""

MAX_IDLE = 1024
"""Idle accounts kept (per level) beyond this are forgotten: at most one job's lead each."""


@dataclass(eq=False, slots=True)
class Entry(Generic[T]):
    """One queued job."""

    order: int
    """Its submission's `next_tick()`."""
    urgency: Urgency | None
    share: Share
    job: T

    def rank(self) -> tuple[int, int, int]:
        """Smallest first: (0 urgent | 1 look-ahead, waiting since, submission order)."""
        if self.urgency is None:
            # The caller did not say: someone is waiting (see VoiceOptions.urgency).
            return 0, self.order, self.order
        since = self.urgency.since
        if since is None:
            return 1, self.order, self.order
        return 0, max(since, self.order), self.order


@dataclass(eq=False, slots=True)
class _StreamAccount(Generic[T]):
    used: float
    running: int = 0
    queued: list[Entry[T]] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return bool(self.running or self.queued)


@dataclass(eq=False, slots=True)
class _KeyAccount(Generic[T]):
    used: float
    running: int = 0
    streams: dict[str, _StreamAccount[T]] = field(default_factory=dict)
    clock: float = 0.0
    """Its streams' virtual clock: the `used` of the stream whose job was picked last."""

    @property
    def active(self) -> bool:
        return self.running > 0 or any(stream.active for stream in self.streams.values())


_Account = TypeVar("_Account", _StreamAccount[Any], _KeyAccount[Any])


class FairQueue(Generic[T]):
    def __init__(self) -> None:
        self._keys: dict[str, _KeyAccount[T]] = {}
        self._clock = 0.0
        """The keys' virtual clock: the `used` of the key whose job was picked last."""
        self._queued = 0

    def __len__(self) -> int:
        return self._queued

    def push(self, entry: Entry[T]) -> None:
        key = _activate(self._keys, entry.share.key, _KeyAccount, self._clock)
        stream = _activate(key.streams, entry.share.stream, _StreamAccount, key.clock)
        stream.queued.append(entry)
        self._queued += 1

    def pop(self) -> Entry[T] | None:
        """The job to run next, counted as running until `finished`; None when nothing is queued."""
        best: tuple[tuple[float, int, tuple[int, int, int]], _KeyAccount[T], _StreamAccount[T], Entry[T]] | None = None
        for key in self._keys.values():
            candidate = _best_of_key(key)
            if candidate is None:
                continue
            stream, entry = candidate
            order = (key.used, key.running, entry.rank())
            if best is None or order < best[0]:
                best = (order, key, stream, entry)
        if best is None:
            return None
        _, key, stream, entry = best
        self._clock = max(self._clock, key.used)
        key.clock = max(key.clock, stream.used)
        stream.queued.remove(entry)
        self._queued -= 1
        key.running += 1
        stream.running += 1
        return entry

    def finished(self, entry: Entry[T], seconds: float) -> None:
        """A job from `pop` is over (run, failed, or cancelled before it started: 0 s)."""
        key = self._keys[entry.share.key]
        stream = key.streams[entry.share.stream]
        key.running -= 1
        stream.running -= 1
        key.used += seconds
        stream.used += seconds
        self._prune(key)

    def remove(self, entry: Entry[T]) -> bool:
        """Take a queued job out (cancelled before a worker took it); False if it is not queued."""
        key = self._keys.get(entry.share.key)
        stream = key.streams.get(entry.share.stream) if key is not None else None
        if key is None or stream is None or entry not in stream.queued:
            return False
        stream.queued.remove(entry)
        self._queued -= 1
        self._prune(key)
        return True

    def drain(self) -> list[Entry[T]]:
        """Every queued job, taken out (shutdown); running ones stay counted until `finished`."""
        entries = [e for key in self._keys.values() for stream in key.streams.values() for e in stream.queued]
        for entry in entries:
            self.remove(entry)
        return entries

    def others_queued(self, share: Share) -> bool:
        """Whether a job of another key, or of another stream of `share`'s key, waits."""
        for name, key in self._keys.items():
            for stream_name, stream in key.streams.items():
                if stream.queued and (name, stream_name) != (share.key, share.stream):
                    return True
        return False

    @property
    def active(self) -> dict[str, int]:
        """Active keys and how many streams each has active."""
        return {
            name: sum(stream.active for stream in key.streams.values())
            for name, key in self._keys.items()
            if key.active
        }

    @property
    def accounts(self) -> int:
        """Accounts held, keys and streams, active or idle (bounded: see the module's docstring)."""
        return len(self._keys) + sum(len(key.streams) for key in self._keys.values())

    def _prune(self, key: _KeyAccount[T]) -> None:
        if not key.active:
            key.streams.clear()  # a key that goes idle forgets its streams' leads over each other
        _forget_caught_up(key.streams, key.clock)
        _forget_caught_up(self._keys, self._clock)


def _activate(accounts: dict[str, _Account], name: str, make: Callable[[float], _Account], clock: float) -> _Account:
    """`name`'s account, made active: never behind the clock."""
    account = accounts.get(name)
    if account is None:
        account = accounts[name] = make(clock)
    elif not account.active:
        account.used = max(account.used, clock)
    return account


def _forget_caught_up(accounts: dict[str, _Account], clock: float) -> None:
    """Drop idle accounts that are not ahead of the clock (they would start from it anyway), and
    the oldest of those ahead beyond `MAX_IDLE`."""
    idle = [name for name, a in accounts.items() if not a.active]
    behind = [name for name in idle if accounts[name].used <= clock]
    ahead = [name for name in idle if accounts[name].used > clock]
    for name in behind + ahead[: max(0, len(ahead) - MAX_IDLE)]:
        del accounts[name]


def _best_of_key(key: _KeyAccount[T]) -> tuple[_StreamAccount[T], Entry[T]] | None:
    """The key's next job: its most urgent class, then its least served stream, then waiting order."""
    best: tuple[tuple[int, float, int, tuple[int, int, int]], _StreamAccount[T], Entry[T]] | None = None
    for stream in key.streams.values():
        if not stream.queued:
            continue
        entry = min(stream.queued, key=Entry.rank)
        rank = entry.rank()
        order = (rank[0], stream.used, stream.running, rank)
        if best is None or order < best[0]:
            best = (order, stream, entry)
    return None if best is None else (best[1], best[2])
