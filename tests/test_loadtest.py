"""The load generator (`python -m loadtest run`): its sans-I/O parts, and a smoke run against a real server.

The smoke test runs the real command line as a subprocess: it starts `python -m stream_server`
(tone) on a loopback port, drives a few streams over the WebSocket and over SSE sessions for a
few seconds, and writes the JSON, the table and the PNG, which are checked here.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import pytest

from loadtest.load.cli import loopback_base
from loadtest.load.corpus import PassageSource, completing_token, make_passage, tokenize
from loadtest.load.feeder import feed_tokens
from loadtest.load.observer import StreamObserver
from loadtest.load.playout import PlayoutClock
from loadtest.load.spec import StreamSpec, frame_duration_ms
from loadtest.load.stats import cdf_points, summarize
from stream_server.text import split_sentences

REPO_ROOT = Path(__file__).resolve().parent.parent

# -- the playout simulator -----------------------------------------------------------------------


def test_player_waits_for_its_jitter_buffer_then_plays_a_steady_stream_without_underrun() -> None:
    player = PlayoutClock(jitter_buffer_ms=100)
    for i in range(4):  # 80 ms: not enough to start
        player.push(i * 20.0, 20.0)
    assert not player.playing
    player.push(80.0, 20.0)  # 100 ms buffered: starts
    assert player.playing
    assert player.buffered_ms(80.0) == pytest.approx(100.0)
    for i in range(5, 200):  # real-time arrival from here on: the buffer stays at 100 ms
        player.push(i * 20.0, 20.0)
    player.finish(4000.0)
    summary = player.summary()
    assert summary.underruns == 0
    assert summary.stall_ms == 0
    assert summary.started_at_ms == 80.0
    assert summary.played_ms == pytest.approx(4000.0)
    assert summary.ends_at_ms == pytest.approx(80.0 + 4000.0)


def test_player_counts_an_underrun_when_audio_comes_late_and_rebuffers_before_resuming() -> None:
    player = PlayoutClock(jitter_buffer_ms=100)
    player.push(0.0, 100.0)  # plays 0..100
    player.push(250.0, 50.0)  # ran dry at 100: underrun; 50 ms buffered, not enough to resume
    assert player.underruns == 1
    assert not player.playing
    player.push(260.0, 50.0)  # 100 ms: resumes at 260, after 160 ms of silence
    assert player.playing
    assert player.stall_ms == pytest.approx(160.0)
    player.push(300.0, 100.0)  # still playing (dry at 360 + 100)
    player.finish(310.0)
    assert player.summary().underruns == 1
    assert player.summary().ends_at_ms == pytest.approx(460.0)


def test_audio_arriving_exactly_when_the_buffer_empties_is_not_an_underrun() -> None:
    player = PlayoutClock(jitter_buffer_ms=40)
    player.push(0.0, 40.0)
    player.push(40.0, 40.0)
    player.push(80.001, 40.0)  # a microsecond late: the player ran dry
    assert player.underruns == 1


def test_a_complete_short_segment_plays_without_filling_the_buffer() -> None:
    player = PlayoutClock(jitter_buffer_ms=500)
    player.push(0.0, 60.0)
    assert not player.playing
    player.segment_complete(1.0)
    assert player.playing
    # The next segment is late: that is an underrun, the listener hears the gap.
    player.push(200.0, 60.0)
    assert player.underruns == 1


def test_running_dry_after_the_end_is_not_an_underrun_and_nothing_may_follow() -> None:
    player = PlayoutClock(jitter_buffer_ms=0)
    player.push(0.0, 20.0)
    player.finish(5.0)
    assert player.buffered_ms(1000.0) == 0.0
    assert player.summary().underruns == 0
    with pytest.raises(RuntimeError):
        player.push(1000.0, 20.0)


def test_player_rejects_time_going_backwards_and_bad_arguments() -> None:
    player = PlayoutClock(jitter_buffer_ms=0)
    player.push(10.0, 20.0)
    with pytest.raises(ValueError):
        player.push(5.0, 20.0)
    with pytest.raises(ValueError):
        player.push(20.0, -1.0)
    with pytest.raises(ValueError):
        PlayoutClock(jitter_buffer_ms=-1)


def test_a_stream_without_audio_never_starts() -> None:
    player = PlayoutClock(jitter_buffer_ms=100)
    player.finish(10.0)
    summary = player.summary()
    assert summary.started_at_ms is None
    assert summary.ends_at_ms is None
    assert summary.underruns == 0


# -- statistics ---------------------------------------------------------------------------------


def test_summarize_percentiles_interpolate_between_ranks() -> None:
    stats = summarize([float(v) for v in range(100, 0, -1)])  # 1..100, unsorted
    assert stats == {"n": 100, "p50": 50.5, "p90": 90.1, "p99": 99.01, "max": 100.0, "mean": 50.5}


def test_summarize_without_samples_gives_nulls_not_nan() -> None:
    assert summarize([]) == {"n": 0, "p50": None, "p90": None, "p99": None, "max": None, "mean": None}
    assert json.dumps(summarize([])) == '{"n": 0, "p50": null, "p90": null, "p99": null, "max": null, "mean": null}'


def test_cdf_points_are_sorted_thinned_and_end_at_one() -> None:
    xs, ys = cdf_points([float(v) for v in range(1000, 0, -1)], max_points=100)
    assert xs == sorted(xs)
    assert len(xs) <= 101
    assert xs[0] == 1.0 and xs[-1] == 1000.0
    assert ys[-1] == 1.0
    assert cdf_points([]) == ([], [])


# -- corpus and the TTFA reference token ------------------------------------------------------


def test_the_completing_token_is_the_one_after_which_the_server_segmenter_cuts() -> None:
    # "Dr." is no sentence end; "left. " is, and its own trailing space makes it certain.
    tokens = ("Dr. ", "Smith ", "left. ", "Then ", "he ", "came.")
    assert completing_token(tokens) == (2, "Dr. Smith left.")
    # A period alone cannot end the sentence: the whitespace token after it does.
    assert completing_token(("It ", "ended", ".", " ", "Next")) == (3, "It ended.")
    # No sentence end at all: the last token (then `end`) completes it.
    assert completing_token(("just ", "words")) == (1, "just words")


def test_passages_follow_the_corpus_and_know_their_first_sentence() -> None:
    source = PassageSource(sentences_per_stream=3)
    assert len(source) > 40  # a few kB of text
    first, second = source.take(), source.take()
    assert first != second
    for passage in (first, second):
        assert passage.text.endswith(" ")
        assert len(split_sentences(passage.text)) == 3
        assert passage.first_sentence == split_sentences(passage.text)[0]
        upto = "".join(passage.tokens[: passage.completing_index + 1])
        assert upto.rstrip().endswith(passage.first_sentence)
    assert tokenize("Hello  there.\nBye") == ("Hello  ", "there.\n", "Bye")
    assert make_passage(["One two.", "Three."]).completing_index == 1


async def test_feeder_sends_every_token_in_order_at_the_requested_rate() -> None:
    sent: list[str] = []
    stamps: list[tuple[int, float]] = []

    async def send(token: str) -> None:
        sent.append(token)

    started = time.perf_counter()
    await feed_tokens(("a ", "b ", "c ", "d ", "e "), 100.0, send, lambda i, t: stamps.append((i, t)))
    elapsed = time.perf_counter() - started
    assert sent == ["a ", "b ", "c ", "d ", "e "]
    assert [i for i, _ in stamps] == [0, 1, 2, 3, 4]
    # Token 4 is due 40 ms after token 0 (all at once would take well under a millisecond); the
    # margin is the event loop's timer slack, which a loaded machine widens.
    assert elapsed >= 0.03
    assert stamps[4][1] - stamps[0][1] >= 0.03


# -- what one stream saw ------------------------------------------------------------------------


def test_observer_measures_ttfa_from_the_completing_token_and_gaps_between_segments() -> None:
    observer = StreamObserver(completing_index=2, expected_first_segment="Hi there.", player=PlayoutClock(20))
    observer.opened(0.0)
    for index, at in enumerate((0.0, 0.025, 0.050, 0.075)):
        observer.token_sent(index, at)
    observer.segment(0.055, "Hi there.")
    observer.audio(0.060, 20.0)  # 10 ms after the completing token
    observer.audio(0.061, 20.0)
    observer.segment_end(0.062)
    observer.segment(0.150, "Next.")
    observer.audio(0.161, 20.0)  # 100 ms after the previous segment's last frame
    observer.segment_end(0.162)
    observer.finished(0.163, {"type": "done", "ttfa_ms": 4.0, "provider_ms": 1.5})
    observer.closed(0.164, 1000)
    record = observer.record(expect_close_code=1000)
    assert record.ok, record.errors
    assert record.ttfa_ms == pytest.approx(10.0)
    assert record.gaps_ms == [pytest.approx(100.0)]
    assert record.frames == 3 and record.audio_ms == 60.0
    assert record.server_ttfa_ms == 4.0 and record.server_added_ms == pytest.approx(2.5)
    assert record.underruns == 1  # 40 ms played from 61 ms, dry at 101, next frame at 161
    assert record.duration_s == pytest.approx(0.164)


def test_observer_flags_what_the_protocol_forbids() -> None:
    observer = StreamObserver(completing_index=0, expected_first_segment="Hello.")
    observer.token_sent(0, 1.0)
    observer.segment(0.5, "Something else.")
    observer.audio(0.9, 20.0)  # before the sentence was complete
    observer.closed(1.1, 1011)
    record = observer.record(expect_close_code=1000)
    assert not record.ok
    joined = " | ".join(record.errors)
    assert "no done message" in joined
    assert "closed with 1011" in joined
    assert "first segment 'Something else.'" in joined
    assert "before the first sentence was complete" in joined
    assert record.underruns is None  # consumed as fast as possible: no player


def test_frame_durations_come_from_the_ready_settings() -> None:
    assert frame_duration_ms({"format": "pcm", "sample_rate": 16000}, 640) == 20.0
    assert frame_duration_ms({"format": "f32", "sample_rate": 48000}, 3840) == 20.0
    assert frame_duration_ms({"format": "mulaw", "sample_rate": 8000}, 80) == 10.0
    assert frame_duration_ms({"format": "opus", "sample_rate": 48000, "frame_ms": 40}, 77) == 40.0
    spec = StreamSpec(provider="tone", format="opus", max_lead_ms=0)
    assert spec.config_fields() == {"provider": "tone", "format": "opus", "max_lead_ms": 0}


def test_only_loopback_servers_are_targets() -> None:
    assert loopback_base("ws://127.0.0.1:8000/v1/tts/stream") == "http://127.0.0.1:8000"
    assert loopback_base("http://localhost:9000") == "http://localhost:9000"
    assert loopback_base("http://127.0.0.2:9000") == "http://127.0.0.2:9000"
    assert loopback_base("http://[::1]:9000") == "http://[::1]:9000"
    for url in ("http://10.0.0.1:8000", "http://example.com:80", "https://127.0.0.1:1", "127.0.0.1:8000"):
        with pytest.raises(argparse.ArgumentTypeError):
            loopback_base(url)


# -- the CI smoke: the real command against a real tone server -----------------------------------


@pytest.mark.timeout(90)
async def test_run_smoke_over_websocket_and_sse_writes_json_table_and_chart(tmp_path: Path) -> None:
    if importlib.util.find_spec("matplotlib") is None:
        # The chart needs matplotlib (the `test` extra has it); skipped in a bare local venv only.
        if os.environ.get("CI"):
            pytest.fail("matplotlib is required in CI (the `test` extra)")
        pytest.skip("matplotlib is not installed")
    out = tmp_path / "run.json"
    argv = [
        sys.executable, "-m", "loadtest", "run",
        "--streams", "3", "--transport", "ws,sse", "--duration-s", "2", "--ramp-s", "0.3",
        "--sentences", "2", "--tokens-per-s", "60", "--stream-timeout-s", "30", "--output", str(out),
    ]  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        *argv, cwd=REPO_ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout=80)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    text = output.decode(errors="replace")
    assert process.returncode == 0, text

    report = json.loads(out.read_text())
    assert report["meta"]["server"]["started_here"] is True
    assert "--providers tone" in report["meta"]["server"]["command"]
    assert [level["config"]["transport"] for level in report["levels"]] == ["ws", "sse"]
    for level in report["levels"]:
        assert level["config"]["streams"] == 3
        assert level["streams_failed"] == 0, level["errors"]
        assert level["streams_completed"] >= 3
        ttfa = level["ttfa_ms"]
        assert ttfa["n"] == level["streams_completed"]
        assert 0 < ttfa["p50"] <= ttfa["p90"] <= ttfa["p99"] <= ttfa["max"] < 5000
        assert len(level["ttfa_samples_ms"]) == ttfa["n"]
        # tone: 80 ms a word; two corpus sentences are at least 8 words, and each is followed by a pause.
        assert level["audio_ms_per_stream"]["p50"] >= 8 * 80
        assert level["frames"] > 0 and level["frames_per_s"] > 0 and level["audio_s_per_s"] > 0
        assert isinstance(level["underruns"], int) and level["underruns"] >= 0
        assert level["segment_gap_ms"]["n"] >= level["streams_completed"]  # >= 1 gap per 2-sentence stream
        server = level["server_process"]
        assert server["available"] is True
        assert server["rss_mib_peak"] > 10 and server["cpu_s"] > 0
        assert level["client_process"]["available"] is True
    # The WebSocket stream's server-side TTFA comes with `done`: below what the client measured.
    ws = report["levels"][0]
    assert ws["server_ttfa_ms"]["n"] == ws["streams_completed"]
    assert ws["server_ttfa_ms"]["p50"] <= ws["ttfa_ms"]["p50"]

    table = out.with_suffix(".txt").read_text()
    assert "ttfa p50" in table and "   ws    3" in table and "  sse    3" in table
    png = out.with_suffix(".png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    assert str(out) in text  # the paths are printed


def test_every_loadtest_module_imports() -> None:
    """Benchmarks are run by hand: an import that drifted from the server's modules shows here."""
    import importlib
    import pkgutil

    import loadtest

    names = [m.name for m in pkgutil.walk_packages(loadtest.__path__, "loadtest.") if not m.name.endswith("__main__")]
    assert "loadtest.encode_bench" in names
    for name in names:
        importlib.import_module(name)
