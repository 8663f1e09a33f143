"""Encoding throughput per output format, as a multiple of real time on one core.

The input is real speech: the embedded Piper voice reading a paragraph (synthesized once, before
timing), pushed through `AudioPipeline` the way a stream does (100 ms slices, a segment end after
each sentence, as `session.stream` slices them). CPU time of this one thread is measured (`time.thread_time`), so the figure is per
core whatever else runs. A bare libopus encoder on 20 ms frames is measured too, as the floor for
the Opus formats.

    python -m loadtest.encode_bench            # from the repository root
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from stream_server.audio import AudioPipeline
from stream_server.audio.formats import FORMATS
from stream_server.audio.pipeline import EncoderSettings
from stream_server.media import PcmChunk
from stream_server.session.synthesis import ENCODE_SLICE_MS

PARAGRAPH = (
    "The old lighthouse keeper walked slowly down to the river. He had done it every evening for forty years. "
    "The boats were coming home, one by one, their lamps swinging in the dusk. Somewhere a dog barked twice. "
    "He sat on the stone wall and waited for the last of them."
)
RESULTS = Path(__file__).resolve().parent / "results"


def speech() -> tuple[list[np.ndarray], int]:
    """The paragraph in Piper's voice, one array per sentence, and its sample rate."""
    from stream_server.providers.piper import default_model_path, load_voice

    loaded = load_voice(default_model_path(), intra_op_threads=0)
    sentences = [chunk.audio_float_array for chunk in loaded.voice.synthesize(PARAGRAPH)]
    return sentences, loaded.info.sample_rate


def run_pipeline(fmt: str, rate: int, sentences: list[np.ndarray], source_rate: int, repeat: int) -> float:
    """CPU seconds of this thread to encode `repeat` times the sentences."""
    step = source_rate * ENCODE_SLICE_MS // 1000
    start = time.thread_time()
    for _ in range(repeat):
        pipeline = AudioPipeline(FORMATS[fmt], rate, 20, EncoderSettings())
        for sentence in sentences:
            for i in range(0, len(sentence), step):
                pipeline.push(PcmChunk(sentence[i : i + step], source_rate))
            pipeline.end_segment(200)
        pipeline.finish()
    return time.thread_time() - start


def run_bare_opus(samples: np.ndarray, repeat: int) -> float:
    """libopus alone (through PyAV), 20 ms frames at 48 kHz, at the server's default complexity."""
    pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
    start = time.thread_time()
    for _ in range(repeat):
        context = av.CodecContext.create("libopus", "w")
        context.sample_rate, context.layout, context.format = 48000, "mono", "s16"
        context.bit_rate, context.time_base = 32000, Fraction(1, 48000)
        context.options = {"application": "audio", "compression_level": str(EncoderSettings().opus_complexity)}
        context.open()
        for i in range(0, len(pcm) - 960, 960):
            frame = av.AudioFrame.from_ndarray(pcm[None, i : i + 960], format="s16", layout="mono")
            frame.sample_rate, frame.pts = 48000, i
            context.encode(frame)
    return time.thread_time() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="encodes of the paragraph per measurement")
    parser.add_argument("--runs", type=int, default=5, help="measurements per row (the median is reported)")
    args = parser.parse_args(argv)

    sentences, source_rate = speech()
    audio_s = sum(len(s) for s in sentences) / source_rate * args.repeat

    rows: list[tuple[str, float]] = []

    def measure(label: str, work) -> None:
        cpu = statistics.median(work() for _ in range(args.runs))
        rows.append((label, audio_s / cpu))
        print(f"{label:<34} {audio_s / cpu:10.0f}x real time", flush=True)

    print(f"{audio_s:.1f} s of Piper speech at {source_rate} Hz per measurement; median of {args.runs} runs; "
          f"{os.cpu_count()} cores, Python {platform.python_version()}, PyAV {av.__version__}")
    measure(f"pcm {source_rate} (passthrough)", lambda: run_pipeline("pcm", source_rate, sentences, source_rate, args.repeat))
    measure("pcm 48000 (resampled)", lambda: run_pipeline("pcm", 48000, sentences, source_rate, args.repeat))
    measure("pcm 16000 (resampled)", lambda: run_pipeline("pcm", 16000, sentences, source_rate, args.repeat))
    for name, fmt in FORMATS.items():
        if name == "pcm":
            continue
        rate = source_rate if source_rate in fmt.sample_rates else fmt.sample_rates[-1]
        measure(f"{name} {rate}", lambda n=name, r=rate: run_pipeline(n, r, sentences, source_rate, args.repeat))
    resampler = av.AudioResampler(format="flt", layout="mono", rate=48000)
    joined = np.concatenate(sentences)
    frame = av.AudioFrame.from_ndarray(joined[None, :], format="flt", layout="mono")
    frame.sample_rate = source_rate
    at_48k = np.concatenate([f.to_ndarray()[0] for f in resampler.resample(frame)])
    bare_audio_s = len(at_48k) / 48000 * args.repeat
    cpu = statistics.median(run_bare_opus(at_48k, args.repeat) for _ in range(args.runs))
    rows.append(("libopus alone (PyAV, 20 ms frames)", bare_audio_s / cpu))
    print(f"{'libopus alone (PyAV, 20 ms frames)':<34} {bare_audio_s / cpu:10.0f}x real time")

    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"encode-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"command": sys.argv, "audio_s": audio_s, "rows": rows}, indent=2))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
