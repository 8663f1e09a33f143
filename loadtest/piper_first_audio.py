"""`python -m loadtest piper-first-audio`: the Piper provider's first audio and total synthesis
time, chunked against one-shot, in one process (no server, no network: what the voice itself
costs), and the physical bound of the chunked path.

Both providers are loaded at once and asked in turn, so that both see the same machine load;
each sentence is a ~10-word first sentence. Figures are medians over `--rounds` rounds:

- first audio: from `synthesize()` to its first chunk;
- total: from `synthesize()` to its last chunk (the whole sentence's audio);
- bound: the chunked voice's front part plus its first window's decode, timed alone on the same
  sentence (phonemizing and the pool's hand-offs are what the first-audio figure adds to it).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Sequence

import numpy as np

from loadtest.ttfa import loadavg
from stream_server.providers.base import Urgency, VoiceOptions
from stream_server.providers.piper import PiperProvider, default_model_path
from stream_server.providers.piper_windows import plan_windows

VOICE = "en_US-joe-medium"
SENTENCES = (
    "The quick brown fox jumps over the lazy dog by the river.",
    "Could you tell me how long the drive to the coast takes?",
    "Our team will review your request and reply by tomorrow morning.",
    "Most of the time the answer becomes clearer once the question is written.",
)


async def _time(provider: PiperProvider, text: str) -> tuple[float, float]:
    options = VoiceOptions(voice=VOICE, urgency=Urgency(urgent=True))
    started = time.perf_counter()
    first = None
    async for _ in provider.synthesize(text, options):
        if first is None:
            first = time.perf_counter() - started
    assert first is not None
    return first * 1000, (time.perf_counter() - started) * 1000


def _bound(provider: PiperProvider, text: str) -> tuple[float, float]:
    """(front part ms, first window decode ms) for `text`'s first sentence."""
    loaded = provider._voices[VOICE]
    voice, model = loaded.voice, loaded.chunked
    assert model is not None
    ids = voice.phonemes_to_ids(voice.phonemize(text)[0])
    started = time.perf_counter()
    latent, _ = model.run_front(voice, ids, voice.config.length_scale)
    fronted = time.perf_counter()
    window = plan_windows(latent.shape[2])[0]
    model.decode(np.ascontiguousarray(latent[:, :, window.context_start : window.context_end]))
    return (fronted - started) * 1000, (time.perf_counter() - fronted) * 1000


async def measure(rounds: int) -> dict[str, list[float]]:
    chunked = PiperProvider([default_model_path()], chunked=True)
    one_shot = PiperProvider([default_model_path()], chunked=False)
    figures: dict[str, list[float]] = {
        key: [] for key in ("chunked_first", "chunked_total", "one_shot_first", "one_shot_total", "front", "window")
    }
    try:
        for _ in range(rounds):
            for text in SENTENCES:
                first, total = await _time(chunked, text)
                figures["chunked_first"].append(first)
                figures["chunked_total"].append(total)
                first, total = await _time(one_shot, text)
                figures["one_shot_first"].append(first)
                figures["one_shot_total"].append(total)
                front, window = await asyncio.to_thread(_bound, chunked, text)
                figures["front"].append(front)
                figures["window"].append(window)
    finally:
        await chunked.aclose()
        await one_shot.aclose()
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest piper-first-audio", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds over the 4 sentences (default 5)")
    args = parser.parse_args(argv)
    before = loadavg()
    figures = asyncio.run(measure(args.rounds))
    med = {key: statistics.median(values) for key, values in figures.items()}
    print(f"load average before {before}, after {loadavg()}; {len(figures['front'])} syntheses per path")
    print(f"first audio  p50: chunked {med['chunked_first']:.0f} ms, one-shot {med['one_shot_first']:.0f} ms")
    print(f"total        p50: chunked {med['chunked_total']:.0f} ms, one-shot {med['one_shot_total']:.0f} ms "
          f"({100 * (med['chunked_total'] / med['one_shot_total'] - 1):+.0f} %)")
    print(f"bound        p50: front part {med['front']:.0f} ms + first window {med['window']:.0f} ms "
          f"= {med['front'] + med['window']:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
