"""When the supervisor of `--workers` restarts a worker, and when it gives up (sans I/O)."""

from __future__ import annotations

import signal

import pytest

from stream_server.settings import SettingsError
from stream_server.settings_loader import load_settings
from stream_server.workers import GiveUp, Restart, RestartPolicy
from stream_server.workers.restarts import describe_status


def test_a_worker_that_crashes_in_a_loop_waits_longer_each_time_up_to_the_cap() -> None:
    policy = RestartPolicy(first_delay_s=0.5, max_delay_s=4.0, stable_after_s=30.0)
    delays = [policy.exited(0, status=-signal.SIGKILL, served=True, ran_s=1.0) for _ in range(6)]
    assert delays == [Restart(0.5), Restart(1.0), Restart(2.0), Restart(4.0), Restart(4.0), Restart(4.0)]
    # Another slot has its own count.
    assert policy.exited(1, status=1, served=True, ran_s=1.0) == Restart(0.5)


def test_a_worker_that_served_a_while_comes_back_at_once_again() -> None:
    policy = RestartPolicy(first_delay_s=0.5, stable_after_s=30.0)
    for _ in range(3):
        policy.exited(0, status=1, served=True, ran_s=2.0)
    assert policy.exited(0, status=1, served=True, ran_s=31.0) == Restart(0.5)


def test_start_up_failures_in_a_row_stop_the_server_with_the_reason() -> None:
    policy = RestartPolicy(startup_failures=3)
    assert isinstance(policy.exited(0, status=1, served=False, ran_s=0.2), Restart)
    assert isinstance(policy.exited(0, status=-signal.SIGSEGV, served=False, ran_s=0.2), Restart)
    decision = policy.exited(0, status=-signal.SIGSEGV, served=False, ran_s=0.2)
    assert decision == GiveUp("worker 0 failed to start 3 times in a row (last: killed by SIGSEGV; its log is above)")


def test_a_start_that_succeeds_resets_the_start_up_count() -> None:
    policy = RestartPolicy(startup_failures=2)
    policy.exited(0, status=1, served=False, ran_s=0.2)
    policy.exited(0, status=1, served=True, ran_s=5.0)
    assert isinstance(policy.exited(0, status=1, served=False, ran_s=0.2), Restart)


def test_a_bad_setting_stops_the_server_at_once() -> None:
    decision = RestartPolicy().exited(1, status=2, served=False, ran_s=0.3)
    assert decision == GiveUp("worker 1 refused its settings (exit status 2; its message is above)")


def test_statuses_read_as_words() -> None:
    assert describe_status(0) == "exit status 0"
    assert describe_status(-9) == "killed by SIGKILL"


def test_more_than_one_worker_needs_redis_and_no_wyoming() -> None:
    with pytest.raises(SettingsError, match="--workers.*need --redis-url.*per-key limits.*browser tokens.*SSE"):
        load_settings(["--workers", "2"], {})
    assert load_settings(["--workers", "2", "--redis-url", "redis://127.0.0.1:6379/0"], {}).workers == 2
    with pytest.raises(SettingsError, match="Wyoming"):
        load_settings(["--workers", "2", "--redis-url", "redis://r/0", "--wyoming-uri", "tcp://127.0.0.1:10200"], {})
    assert load_settings([], {}).workers == 1


def test_workers_share_the_cores_for_piper_unless_told_otherwise() -> None:
    from stream_server.workers.supervisor import PIPER_THREADS_ENV, shared_cores_env

    redis = ["--redis-url", "redis://127.0.0.1:1/0"]
    four = load_settings([*redis, "--workers", "4"], environ={})
    assert shared_cores_env(four, cores=8) == {PIPER_THREADS_ENV: "2"}
    assert shared_cores_env(four, cores=2) == {PIPER_THREADS_ENV: "1"}  # at least one each
    chosen = load_settings([*redis, "--workers", "4", "--piper-intra-op-threads", "3"], environ={})
    assert shared_cores_env(chosen, cores=8) == {}
    cloud = load_settings([*redis, "--workers", "2", "--providers", "tone", "--provider", "tone"], environ={})
    assert shared_cores_env(cloud, cores=8) == {}
