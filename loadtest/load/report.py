"""A run's readable table (the JSON is the levels' dicts as they are)."""

from __future__ import annotations

from typing import Any


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


COLUMNS = (
    ("transport", 5), ("N", 5), ("ok", 6), ("fail", 5),
    ("ttfa p50", 9), ("p90", 7), ("p99", 7), ("max", 7),
    ("gap p50", 8), ("p99", 7), ("under", 6), ("stall", 6),
    ("frames/s", 9), ("xRT", 6), ("srv cpu%", 9), ("srv MiB", 8), ("cli cpu%", 9), ("other%", 7),
)  # fmt: skip


def level_row(level: dict[str, Any]) -> list[str]:
    cfg, ttfa, gap = level["config"], level["ttfa_ms"], level["segment_gap_ms"]
    server = level.get("server_process") or {}
    client = level.get("client_process") or {}
    under = level.get("underruns")
    stalled = level.get("streams_with_underruns")
    return [
        cfg["transport"], str(cfg["streams"]), str(level["streams_completed"]), str(level["streams_failed"]),
        _ms(ttfa["p50"]), _ms(ttfa["p90"]), _ms(ttfa["p99"]), _ms(ttfa["max"]),
        _ms(gap["p50"]), _ms(gap["p99"]),
        "-" if under is None else str(under), "-" if stalled is None else str(stalled),
        _num(level["frames_per_s"]), _num(level["audio_s_per_s"], 1),
        _num(server.get("cpu_pct_mean")), _num(server.get("rss_mib_peak")), _num(client.get("cpu_pct_mean")),
        _num(level.get("other_processes_cpu_pct")),
    ]  # fmt: skip


def render_table(levels: list[dict[str, Any]], title: str) -> str:
    header = "".join(name.rjust(width) for name, width in COLUMNS)
    lines = [title, header, "-" * len(header)]
    for level in levels:
        lines.append("".join(cell.rjust(width) for cell, (_, width) in zip(level_row(level), COLUMNS, strict=True)))
    lines += [
        "",
        "ttfa: ms from sending the token that completed the first sentence to its first audio frame.",
        "gap: ms between the last frame of a segment and the first of the next, as received.",
        "under: underruns of the simulated player (stall: streams that had any); '-' when consumed as fast",
        "as possible. xRT: audio received per wall-clock second, all streams. srv/cli cpu%: the server's and",
        "this client's CPU, % of one core (mean); srv MiB: the server's peak RSS. other%: CPU used meanwhile by",
        "other processes on the machine, % of all cores (a high value means disturbed figures).",
    ]
    errors = [(lv["config"]["transport"], lv["config"]["streams"], lv["errors"]) for lv in levels if lv["errors"]]
    for transport, streams, reasons in errors:
        lines.append(f"errors at {transport} N={streams}:")
        lines += [f"  {count} x {reason}" for reason, count in reasons.items()]
    return "\n".join(lines)
