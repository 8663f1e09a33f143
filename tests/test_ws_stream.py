"""The WebSocket stream end to end with the `tone` provider: a real server, a real client."""

from __future__ import annotations

import json

import pytest
from websockets.asyncio.client import connect

from stream_server.audio.pipeline import resampler_flush_samples
from stream_server.providers import tone
from stream_server.text import split_sentences

from .conftest import RunningServer, run_server, tone_settings
from .helpers import (
    decode_opus,
    dominant_frequency,
    pcm_samples,
    receive,
    receive_all,
    receive_until,
    send,
    wait_for,
)

TEXT = (
    "Hello there, Dr. Smith. The price went from $3.50 to $4.25 today! "
    "Did you see it? We meet at 10 a.m. tomorrow. Bye now."
)


def expected_segment_ms(text: str, speed: float = 1.0, rate: int = tone.SAMPLE_RATE) -> float:
    """The tone's duration plus the silence that flushes the resampler at each segment's end."""
    flush = resampler_flush_samples(tone.SAMPLE_RATE, rate)
    return tone.expected_duration_ms(text, speed) + 1000.0 * flush / tone.SAMPLE_RATE


async def stream_tokens(ws, text: str) -> None:
    """Send text the way an LLM produces it: small tokens."""
    for i in range(0, len(text), 3):
        await send(ws, type="text", text=text[i : i + 3])


async def test_ready_reflects_url_parameters(tone_server: RunningServer) -> None:
    async with connect(f"{tone_server.ws_url}?voice=low&sample_rate=16000&frame_ms=40&speed=1.5") as ws:
        ready = await receive(ws)
    assert ready == {
        "type": "ready",
        "provider": "tone",
        "voice": "low",
        "format": "pcm",
        "mime": "audio/L16",
        "sample_rate": 16000,
        "channels": 1,
        "frame_ms": 40,
        "speed": 1.5,
        "language": "en",
        "eager_first_segment": 0,
        "boundary_timeout_ms": 150,
        "max_segment_chars": 300,
        "max_lead_ms": 0,
        "idle_timeout_s": 30.0,
        "max_stream_s": 3600.0,
        "emoji": "skip",
        "timestamps": "none",
    }


async def test_config_message_first_replaces_url_parameters(tone_server: RunningServer) -> None:
    async with connect(f"{tone_server.ws_url}?voice=low&sample_rate=16000") as ws:
        assert (await receive(ws))["sample_rate"] == 16000
        # The URL asked for 16 kHz, which opus does not offer: a precise error, then a fix.
        await send(ws, type="config", format="opus")
        error = await receive(ws)
        assert error["code"] == "unsupported_sample_rate"
    async with connect(f"{tone_server.ws_url}?voice=low") as ws:
        await receive(ws)
        await send(ws, type="config", format="opus")
        ready = await receive(ws)
        # Fields of the config message override the URL's; the others are kept.
        assert (ready["format"], ready["sample_rate"], ready["voice"]) == ("opus", 48000, "low")
        await send(ws, type="config", voice="low")
        error = await receive(ws)
        assert error["type"] == "error" and error["code"] == "config_too_late"


async def test_streamed_tokens_give_ordered_segments_and_matching_audio(tone_server: RunningServer) -> None:
    async with connect(f"{tone_server.ws_url}?sample_rate=24000") as ws:
        await receive(ws)
        await stream_tokens(ws, TEXT)
        await send(ws, type="end")
        transcript = await receive_all(ws)
        close_code = ws.close_code

    expected = split_sentences(TEXT)
    segments = transcript.messages("segment")
    assert [s["text"] for s in segments] == expected
    assert [s["seq"] for s in segments] == list(range(len(expected)))
    ends = transcript.messages("segment_end")
    assert [e["seq"] for e in ends] == list(range(len(expected)))

    frame_bytes = 24000 * 20 // 1000 * 2
    by_segment = transcript.frames_by_segment()
    for segment, end in zip(segments, ends):
        frames = by_segment[segment["seq"]]
        assert all(len(f) == frame_bytes for f in frames[:-1]), "only a segment's last frame may be short"
        assert 0 < len(frames[-1]) <= frame_bytes
        assert end["audio_ms"] == pytest.approx(sum(len(f) for f in frames) / 48, abs=0.01)
        assert end["audio_ms"] == pytest.approx(expected_segment_ms(segment["text"]), abs=0.1)

    done = transcript.messages("done")[0]
    assert transcript.items[-1] == done
    total_expected = sum(expected_segment_ms(s) for s in expected)
    assert done["segments"] == len(expected)
    assert done["audio_ms"] == pytest.approx(total_expected, abs=0.1)
    assert len(pcm_samples(transcript.frames())) == pytest.approx(total_expected * 24, abs=2)
    assert done["text_chars"] == len(TEXT)
    assert done["ttfa_ms"] is not None and done["ttfa_ms"] >= 0
    assert close_code == 1000


async def test_a_sentence_is_heard_while_later_text_is_still_arriving(tone_server: RunningServer) -> None:
    async with connect(tone_server.ws_url) as ws:
        await receive(ws)
        await stream_tokens(ws, "First sentence is here. Second one is still being wri")
        # No flush, no end: the first sentence must come out on its own.
        transcript = await receive_until(ws, "segment_end")
        assert transcript.messages("segment")[0]["text"] == "First sentence is here."
        assert transcript.frames(), "audio before the rest of the text"
        await stream_tokens(ws, "tten.")
        await send(ws, type="end")
        rest = await receive_all(ws)
    assert [s["text"] for s in rest.messages("segment")] == ["Second one is still being written."]


async def test_flush_synthesizes_text_without_a_sentence_end(tone_server: RunningServer) -> None:
    async with connect(tone_server.ws_url) as ws:
        await receive(ws)
        await send(ws, type="text", text="no punctuation here")
        await send(ws, type="flush")
        transcript = await receive_until(ws, "segment_end")
        assert transcript.messages("segment")[0]["text"] == "no punctuation here"
        assert transcript.messages("segment_end")[0]["audio_ms"] == pytest.approx(
            expected_segment_ms("no punctuation here"), abs=0.1
        )


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 24000, 44100, 48000])
async def test_pcm_at_every_rate_decodes_to_the_right_duration_and_pitch(
    tone_server: RunningServer, rate: int
) -> None:
    text = "Beep beep beep."
    async with connect(f"{tone_server.ws_url}?sample_rate={rate}&voice=low") as ws:
        assert (await receive(ws))["sample_rate"] == rate
        await send(ws, type="text", text=text)
        await send(ws, type="end")
        transcript = await receive_all(ws)
    samples = pcm_samples(transcript.frames())
    # All of the tone, plus at most the flush silence (less the part still in the resampler).
    duration_ms = len(samples) / rate * 1000
    assert tone.expected_duration_ms(text) <= duration_ms <= expected_segment_ms(text, rate=rate)
    beep = samples[: rate * tone.BEEP_MS // 1000]
    # The pitch the tone provider chose for "Beep": a wrong rate would shift it.
    expected_hz = dominant_frequency(tone._beep("Beep", tone._PITCH_BASE["low"], 1.0), tone.SAMPLE_RATE)
    assert dominant_frequency(beep, rate) == pytest.approx(expected_hz, rel=0.03)


async def test_opus_packets_decode_to_twenty_ms_each(tone_server: RunningServer) -> None:
    text = "One two three four five. Six seven."
    async with connect(f"{tone_server.ws_url}?format=opus") as ws:
        ready = await receive(ws)
        assert (ready["format"], ready["sample_rate"], ready["frame_ms"]) == ("opus", 48000, 20)
        await stream_tokens(ws, text)
        await send(ws, type="end")
        transcript = await receive_all(ws)
    packets = transcript.frames()
    audio, lengths = decode_opus(packets)
    assert all(n == 960 for n in lengths), set(lengths)
    segments = split_sentences(text)
    expected_ms = sum(expected_segment_ms(s) for s in segments)
    # Each segment's last packet is padded to a whole frame (plus one more to free the codec's lookahead).
    assert expected_ms <= len(audio) / 48 <= expected_ms + 2 * 20 * len(segments)
    assert transcript.messages("done")[0]["audio_ms"] == pytest.approx(len(packets) * 20)
    assert float(abs(audio).max()) > 0.2


async def test_speed_shortens_the_audio(tone_server: RunningServer) -> None:
    async with connect(f"{tone_server.ws_url}?speed=2") as ws:
        await receive(ws)
        await send(ws, type="text", text="one two three four")
        await send(ws, type="end")
        transcript = await receive_all(ws)
    done = transcript.messages("done")[0]
    assert done["audio_ms"] == pytest.approx(expected_segment_ms("one two three four", 2.0), abs=0.1)
    assert tone.expected_duration_ms("one two three four", 2.0) == tone.expected_duration_ms("one two three four") / 2


async def test_cancel_drops_queued_audio_and_the_connection_goes_on(tone_server: RunningServer) -> None:
    many = " ".join(f"Sentence number {i} has six words." for i in range(400))
    async with connect(f"{tone_server.ws_url}?sample_rate=48000", max_queue=4) as ws:
        await receive(ws)
        await send(ws, type="text", text=many)
        before = await receive_until(ws, "segment")
        session = next(iter(tone_server.state.streams))
        # Not reading fills the socket buffers and then the ring: now there is stale audio to drop.
        await wait_for(lambda: session.backpressured)
        assert session.core.buffered_ms > 1000
        await send(ws, type="cancel")
        tail = await receive_until(ws, "cancelled", before)
        assert session.core.buffered_ms == 0 and session.pending_chars == 0
        last_old_seq = max(m["seq"] for m in tail.messages("segment"))
        # Far fewer than 400 segments reached the client: the rest were dropped, not sent.
        assert last_old_seq < 300

        await send(ws, type="text", text="A fresh start.")
        await send(ws, type="end")
        after = await receive_all(ws)
    assert ws.close_code == 1000
    segments = after.messages("segment")
    assert [s["text"] for s in segments] == ["A fresh start."]
    assert segments[0]["seq"] > last_old_seq
    # Every frame after `cancelled` belongs to the new segment.
    assert after.items[0] == segments[0]
    assert len(after.frames()) == len(after.frames_by_segment()[segments[0]["seq"]])


async def test_cancel_after_end_still_finishes_with_done(tone_server: RunningServer) -> None:
    async with connect(tone_server.ws_url) as ws:
        await receive(ws)
        await send(ws, type="text", text=" ".join(["Words and more words."] * 50))
        await send(ws, type="end")
        await receive_until(ws, "segment")
        await send(ws, type="cancel")
        transcript = await receive_all(ws)
    kinds = [m["type"] for m in transcript.messages()]
    assert kinds[-2:] == ["cancelled", "done"]
    assert ws.close_code == 1000
    # `done` counts what the client got, not what was synthesized and then dropped.
    done = transcript.messages("done")[0]
    assert done["audio_ms"] == pytest.approx(len(pcm_samples(transcript.frames())) / 24, abs=0.01)
    assert done["segments"] == len(transcript.messages("segment_end"))


async def test_log_lines_are_json_and_never_carry_text_at_info(tone_provider, capfd) -> None:
    secret = "Purple elephants dance quietly."
    async with run_server(tone_settings(log_level="info"), {"tone": tone_provider}) as server:
        async with connect(server.ws_url) as ws:
            await receive(ws)
            await send(ws, type="text", text=secret)
            await send(ws, type="end")
            await receive_all(ws)
    lines = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line is one JSON event
    events = {e["event"] for e in entries}
    assert {"stream.open", "stream.done", "stream.closed"} <= events
    assert not any("elephants" in line for line in lines)
