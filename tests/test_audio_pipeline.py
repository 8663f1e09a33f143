"""Tests of AudioPipeline: resampling, framing and encoding of synthetic sine input.

Input is a float32 sine pushed in random-sized chunks, like a provider would. The output is checked
for frame sizes, total duration and pitch: a dominant frequency off by the ratio of two rates
(e.g. 24000/22050, +8.8%) is the "chipmunk" bug of a mislabelled sample rate.
"""

from __future__ import annotations

from collections.abc import Iterator

import av
import numpy as np
import pytest

from stream_server.audio import FORMATS, AudioPipeline, EncodedFrame, get_format
from stream_server.audio.formats import MAX_FRAME_MS, MIN_FRAME_MS, OPUS_FRAME_MS, PCM_RATES
from stream_server.audio.pipeline import EncoderSettings, resampler_flush_samples
from stream_server.providers.base import PcmChunk

INPUT_RATES = (22050, 24000)
FRAME_MS_CHOICES = (10, 20, 40)
TONE_HZ = 440.0
BITRATE = 32000
# libopus looks ahead 6.5 ms (312 samples at 48 kHz); a decoder without container info outputs
# them as leading samples before the input's first sample.
OPUS_DELAY_SAMPLES = 312


def sine(rate: int, seconds: float, freq: float = TONE_HZ) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def chunks(samples: np.ndarray, rate: int, seed: int) -> Iterator[PcmChunk]:
    """`samples` cut at random points, from single samples to ~100 ms pieces."""
    rng = np.random.default_rng(seed)
    start = 0
    while start < len(samples):
        size = int(rng.choice([1, rng.integers(2, 64), rng.integers(64, rate // 10)]))
        yield PcmChunk(samples[start : start + size], rate)
        start += size


def flush_out(in_rate: int, out_rate: int) -> float:
    """Output samples of silence that end_segment feeds through the resampler (at most)."""
    return resampler_flush_samples(in_rate, out_rate) * out_rate / in_rate + 1


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    x = samples.astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[spectrum.argmax()])


def pcm_samples(frames: list[EncodedFrame]) -> np.ndarray:
    return np.frombuffer(b"".join(f.data for f in frames), dtype="<i2")


def pipeline(fmt: str, rate: int, frame_ms: int) -> AudioPipeline:
    return AudioPipeline(FORMATS[fmt], rate, frame_ms, EncoderSettings(opus_bitrate=BITRATE))


def valid_pcm_combos() -> list[tuple[int, int, int]]:
    return [
        (in_rate, out_rate, frame_ms)
        for in_rate in INPUT_RATES
        for out_rate in PCM_RATES
        for frame_ms in FRAME_MS_CHOICES
        if FORMATS["pcm"].frame_ms_error(out_rate, frame_ms) is None
    ]


def test_every_pcm_rate_has_a_valid_frame_ms_under_test() -> None:
    assert {out for _, out, _ in valid_pcm_combos()} == set(PCM_RATES)
    assert (22050, 22050, 10) not in valid_pcm_combos()  # 220.5 samples: not a whole frame


# -- pcm ----------------------------------------------------------------------------------------


def run_segment(audio: AudioPipeline, signal: np.ndarray, rate: int, seed: int) -> tuple[list[EncodedFrame], list[EncodedFrame]]:
    """Push one segment in random chunks: (frames from push, frames from end_segment)."""
    pushed: list[EncodedFrame] = []
    for chunk in chunks(signal, rate, seed=seed):
        pushed += audio.push(chunk)
    return pushed, audio.end_segment()


@pytest.mark.parametrize(("in_rate", "out_rate", "frame_ms"), valid_pcm_combos())
def test_pcm_frames_duration_and_pitch(in_rate: int, out_rate: int, frame_ms: int) -> None:
    signal = sine(in_rate, 0.737)
    audio = pipeline("pcm", out_rate, frame_ms)
    frame_bytes = out_rate * frame_ms // 1000 * 2

    pushed, last = run_segment(audio, signal, in_rate, seed=out_rate + frame_ms)
    frames = pushed + last

    # Every frame but the segment's last is exactly frame_ms; the last one may be shorter.
    assert len(frames) > 1
    for frame in frames[:-1]:
        assert len(frame.data) == frame_bytes
        assert frame.duration_ms == pytest.approx(frame_ms)
    assert 0 < len(frames[-1].data) <= frame_bytes
    assert len(frames[-1].data) % 2 == 0
    for frame in frames:
        assert frame.duration_ms == pytest.approx(1000 * len(frame.data) / 2 / out_rate)

    # The whole segment is out by its end: every input sample, plus at most the little silence
    # that pushed it through the resampler's delay.
    samples = pcm_samples(frames)
    expected = len(signal) * out_rate / in_rate
    assert expected - 1 <= len(samples) <= expected + flush_out(in_rate, out_rate)
    assert sum(f.duration_ms for f in frames) == pytest.approx(1000 * len(samples) / out_rate)

    assert dominant_hz(samples, out_rate) == pytest.approx(TONE_HZ, rel=0.02)
    # The level survives too (0.5 full scale, give or take the resampler's edges).
    assert 0.4 * 32767 < np.abs(samples).max() < 0.6 * 32767


@pytest.mark.parametrize("in_rate", INPUT_RATES)
def test_pcm_each_segment_is_complete_at_its_end(in_rate: int) -> None:
    out_rate, frame_ms = 16000, 20
    audio = pipeline("pcm", out_rate, frame_ms)
    frame_bytes = out_rate * frame_ms // 1000 * 2
    total_in = 0
    total_out = 0
    for seq, (seconds, freq) in enumerate([(0.3037, 300.0), (0.5111, 700.0), (0.25, 500.0)]):
        signal = sine(in_rate, seconds, freq)
        pushed, last = run_segment(audio, signal, in_rate, seed=seq)
        frames = pushed + last
        assert all(len(f.data) == frame_bytes for f in frames[:-1])
        assert audio.end_segment() == []  # nothing left over
        total_in += len(signal)
        total_out += len(pcm_samples(frames))
        assert total_out >= total_in * out_rate / in_rate - 1
        assert total_out <= total_in * out_rate / in_rate + (seq + 1) * flush_out(in_rate, out_rate)
        # Each segment carries its own pitch: nothing of the previous one leaks in audibly.
        assert dominant_hz(pcm_samples(frames), out_rate) == pytest.approx(freq, rel=0.02)


def test_pcm_same_rate_keeps_the_samples() -> None:
    signal = sine(24000, 0.25)
    audio = pipeline("pcm", 24000, 20)
    pushed, last = run_segment(audio, signal, 24000, seed=1)
    got = pcm_samples(pushed + last).astype(np.int32)
    expected = np.round(signal * 32767).astype(np.int32)
    assert len(got) >= len(expected)
    # The sine starts and stops mid-swing: the first and last 5 ms are faded, the rest is as it was.
    fade = 24000 * 5 // 1000
    assert np.abs(got[fade : len(expected) - fade] - expected[fade:-fade]).max() <= 1
    assert np.abs(got[:fade]).max() < np.abs(expected[:fade]).max()
    assert not got[len(expected) :].any()  # only silence after the segment's samples


def test_pcm_empty_segment_gives_no_frames() -> None:
    audio = pipeline("pcm", 24000, 20)
    assert audio.end_segment() == []


# -- opus ---------------------------------------------------------------------------------------


def opus_decoder(name: str) -> av.CodecContext:
    decoder = av.CodecContext.create(name, "r")
    decoder.sample_rate = 48000
    decoder.layout = "mono"
    return decoder


def decode_packets(frames: list[EncodedFrame], decoder_name: str = "libopus") -> list[np.ndarray]:
    """One array of samples per packet, in order."""
    decoder = opus_decoder(decoder_name)
    out = []
    for frame in frames:
        decoded = decoder.decode(av.Packet(frame.data))
        for d in decoded:
            assert d.sample_rate == 48000
            assert d.layout.nb_channels == 1
        out.append(np.concatenate([d.to_ndarray().reshape(-1) for d in decoded]) if decoded else np.zeros(0))
    return out


@pytest.mark.parametrize("decoder_name", ["libopus", "opus"])
@pytest.mark.parametrize("frame_ms", OPUS_FRAME_MS)
@pytest.mark.parametrize("in_rate", INPUT_RATES)
def test_opus_packets_duration_and_pitch(in_rate: int, frame_ms: int, decoder_name: str) -> None:
    signal = sine(in_rate, 0.737)
    audio = pipeline("opus", 48000, frame_ms)
    frame_samples = 48 * frame_ms

    pushed, last = run_segment(audio, signal, in_rate, seed=frame_ms)
    frames = pushed + last
    assert last  # the segment's end is padded to a full frame, never dropped

    packets = decode_packets(frames, decoder_name)
    for frame, pcm in zip(frames, packets, strict=True):
        assert frame.duration_ms == frame_ms
        assert len(pcm) == frame_samples

    decoded = np.concatenate(packets)
    input_samples = len(signal) * 48000 / in_rate
    # Nothing held back: the codec delay and every input sample come out by the segment's end ...
    assert len(decoded) >= input_samples + OPUS_DELAY_SAMPLES
    # ... plus at most one frame of padding and the resampler's flush.
    assert len(decoded) < input_samples + OPUS_DELAY_SAMPLES + frame_samples + flush_out(in_rate, 48000)

    assert dominant_hz(decoded, 48000) == pytest.approx(TONE_HZ, rel=0.02)


@pytest.mark.parametrize("frame_ms", OPUS_FRAME_MS)
def test_opus_segment_ends_pad_to_full_frames(frame_ms: int) -> None:
    audio = pipeline("opus", 48000, frame_ms)
    frames: list[EncodedFrame] = []
    total_in = 0
    for seq, seconds in enumerate((0.3037, 0.1111, 0.5)):
        signal = sine(24000, seconds)
        pushed, last = run_segment(audio, signal, 24000, seed=seq)
        assert last
        assert all(f.duration_ms == frame_ms for f in pushed + last)
        assert audio.end_segment() == []
        frames += pushed + last
        total_in += 2 * len(signal)
        decoded = sum(len(p) for p in decode_packets(frames))
        assert decoded == len(frames) * 48 * frame_ms  # every packet is exactly one frame
        assert decoded >= total_in + OPUS_DELAY_SAMPLES


def test_opus_very_short_segment_still_gives_packets() -> None:
    audio = pipeline("opus", 48000, 20)
    frames = audio.push(PcmChunk(sine(24000, 0.005), 24000)) + audio.end_segment()
    assert frames
    packets = decode_packets(frames)
    assert all(len(p) == 960 for p in packets)
    assert sum(len(p) for p in packets) >= 240 + OPUS_DELAY_SAMPLES


def test_opus_segment_is_complete_whatever_its_length() -> None:
    # 2x upsampling: 240 consecutive input lengths reach every even remainder modulo a 10 ms frame.
    incomplete = []
    for n in range(2400, 2400 + 240):
        audio = pipeline("opus", 48000, 10)
        frames = audio.push(PcmChunk(sine(24000, n / 24000), 24000)) + audio.end_segment()
        decoded = len(frames) * 480  # every packet decodes to one frame (checked above)
        if decoded < 2 * n + OPUS_DELAY_SAMPLES:
            incomplete.append(n)
    assert incomplete == []


# -- OutputFormat.frame_ms_error ----------------------------------------------------------------


def test_formats_registry() -> None:
    assert get_format("pcm") is FORMATS["pcm"]
    assert get_format("opus") is FORMATS["opus"]
    assert get_format("wav") is FORMATS["wav"]
    assert get_format("wave") is None
    assert FORMATS["opus"].sample_rates == (48000,)
    assert FORMATS["opus"].pad_last_frame and not FORMATS["pcm"].pad_last_frame


@pytest.mark.parametrize("frame_ms", OPUS_FRAME_MS)
def test_opus_frame_ms_choices_are_valid(frame_ms: int) -> None:
    assert FORMATS["opus"].frame_ms_error(48000, frame_ms) is None


@pytest.mark.parametrize("frame_ms", [5, 15, 25, 30, 100])
def test_opus_other_frame_ms_are_rejected_with_the_choices(frame_ms: int) -> None:
    error = FORMATS["opus"].frame_ms_error(48000, frame_ms)
    assert error is not None
    assert "[10, 20, 40, 60]" in error


def test_pcm_frame_ms_not_whole_samples() -> None:
    error = FORMATS["pcm"].frame_ms_error(22050, 7)
    assert error is not None
    assert "7 ms" in error and "22050" in error
    assert FORMATS["pcm"].frame_ms_error(22050, 20) is None  # 441 samples
    assert FORMATS["pcm"].frame_ms_error(22050, 10) is not None  # 220.5 samples
    assert FORMATS["pcm"].frame_ms_error(16000, 7) is None  # 112 samples


@pytest.mark.parametrize("frame_ms", [MIN_FRAME_MS - 1, 0, MAX_FRAME_MS + 1, 300])
def test_pcm_frame_ms_out_of_range(frame_ms: int) -> None:
    error = FORMATS["pcm"].frame_ms_error(48000, frame_ms)
    assert error is not None
    assert str(MIN_FRAME_MS) in error and str(MAX_FRAME_MS) in error


@pytest.mark.parametrize("frame_ms", [MIN_FRAME_MS, MAX_FRAME_MS])
def test_pcm_frame_ms_range_is_inclusive(frame_ms: int) -> None:
    assert FORMATS["pcm"].frame_ms_error(48000, frame_ms) is None
