"""The soak in its short form: a real server process, 200 stream cycles ten at a time with abrupt
disconnects, slow readers and half-open connections; no leak, no lost or duplicated audio.
The long run is manual: `python -m loadtest.soak --cycles 3000 --concurrency 20`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest.soak import BEHAVIOURS

REPO_ROOT = Path(__file__).resolve().parent.parent
CYCLES = 200


@pytest.mark.timeout(180)
def test_short_soak_leaves_no_leak_and_loses_no_audio(tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "loadtest.soak",
        "--cycles", str(CYCLES), "--concurrency", "10", "--hold-max-s", "0.3",
        "--max-duration-s", "60", "--results-dir", str(tmp_path),
    ]  # fmt: skip
    run = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=170, check=False)
    assert run.stdout, run.stderr[-3000:]
    report = json.loads(run.stdout)
    details = json.dumps({k: report.get(k) for k in ("problem_samples", "growth", "server_errors")})

    assert report["cycles_run"] == CYCLES, details
    assert set(report["behaviours"]) == set(BEHAVIOURS)
    assert all(count >= 1 for count in report["behaviours"].values())
    assert report["peak"]["streams"] >= 2, "the cycles never overlapped"
    assert report["completed_streams"] >= 10 and report["completed_segments"] > report["completed_streams"]

    assert report["lost_or_duplicated_streams"] == 0, details
    assert report["failed_cycles"] == 0 and report["warmup_failed_cycles"] == 0, details
    assert report["settled"] and report["leaked"] == [], details
    assert report["growth"]["tasks"] == report["growth"]["threads"] == report["growth"]["fds"] == 0
    assert report["growth"]["rss_kib"] <= report["rss_tolerance_kib"]
    assert report["server_alive_after_soak"] and not report["server_errors"], details
    assert report["ok"] and run.returncode == 0, details
