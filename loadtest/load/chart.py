"""The run's PNG: TTFA CDF per level, and underruns against concurrency. Headless (Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .stats import cdf_points


def write_chart(levels: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt

    fig, (cdf_ax, under_ax) = plt.subplots(1, 2, figsize=(12, 4.8))
    for level in levels:
        xs, ys = cdf_points(level.get("ttfa_samples_ms", []))
        if xs:
            cfg = level["config"]
            cdf_ax.step(xs, ys, where="post", label=f"{cfg['transport']} N={cfg['streams']}")
    cdf_ax.set_xscale("log")
    cdf_ax.set_xlabel("time to first audio (ms, log scale)")
    cdf_ax.set_ylabel("fraction of streams")
    cdf_ax.set_title("TTFA CDF")
    cdf_ax.grid(True, which="both", alpha=0.3)
    if cdf_ax.has_data():
        cdf_ax.legend(fontsize="small")

    by_transport: dict[str, list[tuple[int, float]]] = {}
    for level in levels:
        if level.get("underruns") is None:
            continue
        cfg = level["config"]
        streams = max(1, level["streams_completed"])
        by_transport.setdefault(cfg["transport"], []).append((cfg["streams"], level["underruns"] / streams))
    for transport, points in sorted(by_transport.items()):
        points.sort()
        under_ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=transport)
    counts = [p[0] for points in by_transport.values() for p in points]
    if counts and max(counts) > 10 * min(counts):
        under_ax.set_xscale("log")
    under_ax.set_ylim(bottom=0)
    under_ax.set_xlabel("concurrent streams")
    under_ax.set_ylabel("underruns per stream")
    under_ax.set_title(
        "Player underruns vs concurrency" if by_transport else "Underruns (no player: consumed as fast as possible)"
    )
    under_ax.grid(True, alpha=0.3)
    if by_transport:
        under_ax.legend(fontsize="small")
    fig.suptitle(title, fontsize="medium")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
