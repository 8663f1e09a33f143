"""Percentile summaries of a run's samples (the same interpolation as loadtest/ttfa.py)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from loadtest.ttfa import percentile


def summarize(values: Sequence[float]) -> dict[str, float | int | None]:
    """{n, p50, p90, p99, max, mean}; figures are None without samples (JSON has no NaN)."""
    ordered = sorted(values)
    if not ordered:
        return {"n": 0, "p50": None, "p90": None, "p99": None, "max": None, "mean": None}
    return {
        "n": len(ordered),
        "p50": round(percentile(ordered, 50), 3),
        "p90": round(percentile(ordered, 90), 3),
        "p99": round(percentile(ordered, 99), 3),
        "max": round(ordered[-1], 3),
        "mean": round(math.fsum(ordered) / len(ordered), 3),
    }


def cdf_points(values: Sequence[float], max_points: int = 400) -> tuple[list[float], list[float]]:
    """(sorted values, cumulative fractions), thinned to at most `max_points` for a chart."""
    ordered = sorted(values)
    if not ordered:
        return [], []
    step = max(1, len(ordered) // max_points)
    picked = list(range(0, len(ordered), step))
    if picked[-1] != len(ordered) - 1:
        picked.append(len(ordered) - 1)
    return [ordered[i] for i in picked], [(i + 1) / len(ordered) for i in picked]
