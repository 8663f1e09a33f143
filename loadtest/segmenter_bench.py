"""Sentence segmentation: throughput (MB/s of text, one core) and golden-rules accuracy.

Compares, on the same text in one run:

- ours, `split_sentences(text)` (whole text at once);
- ours, `SentenceSegmenter.push` with 1-character tokens and with ~4-character tokens (what an
  LLM stream looks like), then `flush()`;
- pySBD (`pysbd.Segmenter(language="en", clean=False)`), one call per paragraph: its time grows
  quadratically with the length of one call's text, and paragraphs are how it is used;
- blingfire (`text_to_sentences`, whole text).

and scores each on the 48 English golden rules in `tests/data/golden_rules_en.json` (a rule
passes when the stripped segments equal the expected sentences).

pySBD and blingfire are optional (`pip install pysbd blingfire`); a missing one is reported as
such and the others still run.

    python -m loadtest.segmenter_bench            # or: python loadtest/segmenter_bench.py
    python -m loadtest.segmenter_bench --size-kb 2000 --repeat 5
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

from stream_server.text import Segment, SentenceSegmenter, split_sentences

GOLDEN_RULES = Path(__file__).resolve().parent.parent / "tests" / "data" / "golden_rules_en.json"

# Paragraphs in the style of an assistant's answer; repeated to the requested size.
PARAGRAPHS = [
    (
        "Sure! Here is a short overview of the trip. We leave at 7 a.m. on Monday and arrive in "
        "St. Louis around 3:30 p.m. The tickets cost $129.50 each, approx. 20% less than last year."
    ),
    (
        "Dr. Alvarez, who works for Acme Inc. in the U.S., said the results were \"promising.\" "
        "She added that the new version (v2.4.1) fixes most issues, e.g. the memory leak and the "
        "slow start-up. Did she mention the release date? Not yet."
    ),
    (
        "You can read the full report at https://example.com/reports/2024/summary.html. If you "
        "have questions, write to support@example.com... or just call us!"
    ),
    (
        "There are three steps:\n1. Download the installer.\n2. Run it with admin rights.\n"
        "3. Restart the computer."
    ),
    (
        "Honestly, I'm not sure... Maybe we should wait? The weather report for Mt. Hood says "
        "it will snow 10-15 cm tonight; the roads may be closed until Wed. morning."
    ),
    (
        "J. R. R. Tolkien wrote The Hobbit in 1937. It was an instant success, and the sequel "
        "took him over a decade to finish. Why so long? He kept revising the languages!"
    ),
    (
        "The meeting is moved to Room No. 4 on the 2nd floor. Bring your laptop, charger, notes, "
        "etc. We'll start at 10:15 sharp and finish by noon, hopefully."
    ),
    "In short: the plan works, the budget is fine, and the team is ready. Let's go.",
]


def bench_text(size_kb: int) -> str:
    paragraphs: list[str] = []
    size = 0
    while size < size_kb * 1000:
        for paragraph in PARAGRAPHS:
            paragraphs.append(paragraph)
            size += len(paragraph.encode()) + 2
    return "\n\n".join(paragraphs)


def ours_whole(text: str) -> list[str]:
    return split_sentences(text)


def ours_tokens(size: int) -> Callable[[str], list[str]]:
    def run(text: str) -> list[str]:
        seg = SentenceSegmenter()
        out: list[Segment] = []
        push = seg.push
        for index in range(0, len(text), size):
            out += push(text[index : index + size])
        return [segment.text for segment in out + seg.flush()]

    return run


def load_pysbd() -> Callable[[str], list[str]] | str:
    try:
        import pysbd
    except ImportError as error:
        return f"not installed ({error})"
    segmenter = pysbd.Segmenter(language="en", clean=False)

    def run(text: str) -> list[str]:
        out: list[str] = []
        for paragraph in text.split("\n\n"):
            out += [s.strip() for s in segmenter.segment(paragraph) if s.strip()]
        return out

    return run


def load_blingfire() -> Callable[[str], list[str]] | str:
    try:
        import blingfire
    except ImportError as error:
        return f"not installed ({error})"

    def run(text: str) -> list[str]:
        return [s.strip() for s in blingfire.text_to_sentences(text).split("\n") if s.strip()]

    return run


def golden_score(split: Callable[[str], list[str]]) -> tuple[int, int, list[int]]:
    rules = json.loads(GOLDEN_RULES.read_text(encoding="utf-8"))["rules"]
    failed = []
    for rule in rules:
        got = [s.strip() for s in split(rule["text"]) if s.strip()]
        if got != rule["expected"]:
            failed.append(rule["id"])
    return len(rules) - len(failed), len(rules), failed


def throughput(split: Callable[[str], list[str]], text: str, repeat: int) -> tuple[float, int]:
    """Best of `repeat` runs, in MB/s of UTF-8 text; and the number of segments."""
    megabytes = len(text.encode()) / 1e6
    best = float("inf")
    count = 0
    for _ in range(repeat):
        started = time.perf_counter()
        count = len(split(text))
        best = min(best, time.perf_counter() - started)
    return megabytes / best, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-kb", type=int, default=1000, help="text size (default 1000 KB)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per row; the best counts")
    args = parser.parse_args()
    text = bench_text(args.size_kb)

    rows: list[tuple[str, Callable[[str], list[str]] | str]] = [
        ("ours: split_sentences (whole text)", ours_whole),
        ("ours: push, 1-char tokens", ours_tokens(1)),
        ("ours: push, 4-char tokens", ours_tokens(4)),
        ("pySBD 0.3 (per paragraph)", load_pysbd()),
        ("blingfire (whole text)", load_blingfire()),
    ]
    print(f"text: {len(text.encode()) / 1e6:.2f} MB, {len(text.splitlines())} lines; best of {args.repeat}")
    print()
    print(f"| {'segmenter':<36} | {'MB/s':>7} | {'segments':>8} | {'golden rules':>12} | failed rules |")
    print(f"|{'-' * 38}|{'-' * 9}|{'-' * 10}|{'-' * 14}|--------------|")
    for name, split in rows:
        if isinstance(split, str):
            print(f"| {name:<36} | {'-':>7} | {'-':>8} | {'-':>12} | {split} |")
            continue
        rate, count = throughput(split, text, args.repeat)
        passed, total, failed = golden_score(split)
        failed_text = ", ".join(map(str, failed)) or "none"
        print(f"| {name:<36} | {rate:7.2f} | {count:8d} | {passed:>5} / {total:<4} | {failed_text} |")


if __name__ == "__main__":
    main()
