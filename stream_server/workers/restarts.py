"""When a worker that exited starts again, and when the supervisor gives up — sans I/O.

A worker that served and then crashed is restarted after a back-off that doubles with each crash
in a row (0.5 s, 1 s, 2 s ... at most 30 s) and starts over once a worker has served for
`stable_after_s`: a worker that crashes now and then comes back at once, one that crashes in a
loop does not spin the machine. A worker that dies before it serves is a start-up failure: with
exit status 2 (the server's "bad setting") the next start would fail the same way, so the server
stops at once; otherwise after `startup_failures` in a row (a model that does not load, a port
out of memory...) it stops too, with a message saying why, rather than restarting forever.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field

BAD_SETTING_STATUS = 2


@dataclass(frozen=True, slots=True)
class Restart:
    delay_s: float


@dataclass(frozen=True, slots=True)
class GiveUp:
    reason: str


def describe_status(status: int) -> str:
    """A process's exit status as a person reads it (`subprocess`'s negative numbers are signals)."""
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit status {status}"


@dataclass
class RestartPolicy:
    first_delay_s: float = 0.5
    max_delay_s: float = 30.0
    stable_after_s: float = 30.0
    startup_failures: int = 3
    _crashes: dict[int, int] = field(default_factory=dict)  # by worker slot: crashes in a row
    _failed_starts: dict[int, int] = field(default_factory=dict)  # by slot: start-up failures in a row

    def exited(self, slot: int, *, status: int, served: bool, ran_s: float) -> Restart | GiveUp:
        """Worker `slot` exited with `status` after `ran_s` seconds; `served`: it had reported serving."""
        if not served:
            failed = self._failed_starts.get(slot, 0) + 1
            self._failed_starts[slot] = failed
            if status == BAD_SETTING_STATUS:
                return GiveUp(f"worker {slot} refused its settings ({describe_status(status)}; its message is above)")
            if failed >= self.startup_failures:
                return GiveUp(
                    f"worker {slot} failed to start {failed} times in a row (last: {describe_status(status)}; "
                    "its log is above)"
                )
        else:
            self._failed_starts[slot] = 0
            if ran_s >= self.stable_after_s:
                self._crashes[slot] = 0
        crashes = self._crashes.get(slot, 0) + 1
        self._crashes[slot] = crashes
        return Restart(min(self.first_delay_s * 2 ** (crashes - 1), self.max_delay_s))
