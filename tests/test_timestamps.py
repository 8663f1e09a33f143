"""Word and character timestamps end to end: real servers, real clients, the audio decoded and
each word's time checked against where its beep is (the tone provider knows its words exactly)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import numpy as np
import pytest
from websockets.asyncio.client import connect

from stream_server.providers.tone import ToneProvider
from stream_server.text import without_emoji

from .conftest import RunningServer, run_server, tone_settings
from .helpers import Transcript, pcm_samples, receive, receive_all, receive_until, send
from .test_sse import create, read_events, read_with_drops
from .test_timeline import beep_onsets_ms

TEXT = "Hello there, my friend. How are 🙂 you today?\n\nA new paragraph starts here. Short one."
PAUSES = {"sentence_pause_ms": 200, "paragraph_pause_ms": 450, "clause_pause_ms": 80}


@pytest.fixture
async def paused_server(tone_provider: ToneProvider):
    """Pauses between segments on, so that the timeline has more than the provider's audio."""
    async with run_server(tone_settings(**PAUSES), {"tone": tone_provider}) as running:
        yield running


def aligned_words(transcript: Transcript) -> list[dict[str, Any]]:
    return [dict(word, seq=m["seq"]) for m in transcript.messages("alignment") for word in m["words"]]


def audio_ms_before_each_alignment(transcript: Transcript, rate: int) -> list[float]:
    sent, out = 0.0, []
    for item in transcript.items:
        if isinstance(item, bytes):
            sent += 1000.0 * len(item) / 2 / rate
        elif item["type"] == "alignment":
            out.append(sent)
    return out


def check_words(words: list[dict[str, Any]], text: str) -> None:
    """Every word the voice speaks, once, in order, monotonic, each naming its span of `text`."""
    assert [w["text"] for w in words] == without_emoji(text).split()
    for word in words:
        assert text[word["char_start"] : word["char_end"]] == word["text"]
        assert word["start_ms"] <= word["end_ms"]
    starts = [w["start_ms"] for w in words]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)


@pytest.mark.parametrize("rate", [24000, 16000])
async def test_websocket_words_are_where_their_beeps_are(paused_server: RunningServer, rate: int) -> None:
    async with connect(f"{paused_server.ws_url}?timestamps=word&sample_rate={rate}") as ws:
        assert (await receive(ws))["timestamps"] == "word"  # type: ignore[index]
        for i in range(0, len(TEXT), 4):  # as an LLM sends it
            await send(ws, type="text", text=TEXT[i : i + 4])
        await send(ws, type="end")
        transcript = await receive_all(ws)
    words = aligned_words(transcript)
    check_words(words, TEXT)
    assert all("chars" not in m for m in transcript.messages("alignment"))
    onsets = beep_onsets_ms(pcm_samples(transcript.frames()), rate)
    assert len(onsets) == len(words)
    for word, onset in zip(words, onsets, strict=True):
        # Pauses (incl. the paragraph's) and resampling accounted for: within 2 ms of the beep.
        assert abs(word["start_ms"] - onset) < 2.0, (word, onset)
    # Each alignment arrives before the audio holding its first word's start.
    before = audio_ms_before_each_alignment(transcript, rate)
    for sent_ms, message in zip(before, transcript.messages("alignment"), strict=True):
        assert sent_ms <= message["words"][0]["start_ms"]
    # An alignment comes inside its segment: after its `segment`, before its `segment_end`.
    current = None
    for message in transcript.messages():
        if message["type"] == "segment":
            current = message["seq"]
        elif message["type"] == "segment_end":
            current = None
        elif message["type"] == "alignment":
            assert message["seq"] == current


async def test_char_timestamps_cover_each_words_characters(paused_server: RunningServer) -> None:
    async with connect(f"{paused_server.ws_url}?sample_rate=24000") as ws:
        await receive(ws)
        await send(ws, type="config", timestamps="char")
        assert (await receive(ws))["timestamps"] == "char"  # type: ignore[index]
        await send(ws, type="text", text=TEXT)
        await send(ws, type="end")
        transcript = await receive_all(ws)
    for message in transcript.messages("alignment"):
        chars = message["chars"]
        assert "".join(c["char"] for c in chars) == "".join(w["text"] for w in message["words"])
        position = 0
        for word in message["words"]:
            own = chars[position : position + len(word["text"])]
            position += len(word["text"])
            assert own[0]["start_ms"] == word["start_ms"] and own[-1]["end_ms"] == word["end_ms"]
            for char in own:
                assert word["start_ms"] <= char["start_ms"] <= char["end_ms"] <= word["end_ms"]
            assert all(a["end_ms"] == b["start_ms"] for a, b in zip(own, own[1:], strict=False))
    check_words(aligned_words(transcript), TEXT)


async def test_no_alignment_unless_asked(tone_server: RunningServer) -> None:
    async with connect(tone_server.ws_url) as ws:
        await receive(ws)
        await send(ws, type="text", text="Nothing to align here.")
        await send(ws, type="end")
        transcript = await receive_all(ws)
    assert not transcript.messages("alignment") and transcript.frames()


async def test_a_bad_timestamps_value_is_refused_with_bad_message(tone_server: RunningServer) -> None:
    async with connect(tone_server.ws_url) as ws:
        await receive(ws)
        await send(ws, type="config", timestamps="phoneme")
        error = await receive(ws)
        assert isinstance(error, dict) and error["type"] == "error" and error["code"] == "bad_message"
        assert "timestamps" in error["message"]
        await send(ws, type="config", timestamps="word")  # the stream stays usable
        assert (await receive(ws))["timestamps"] == "word"  # type: ignore[index]
    async with connect(f"{tone_server.ws_url}?timestamps=often") as ws:
        error = await receive(ws)
        assert isinstance(error, dict) and error["code"] == "bad_message"
        await receive_all(ws)
    assert ws.close_code == 1008


async def test_cancel_with_played_ms_names_the_last_word_sent_and_heard(tone_provider: ToneProvider) -> None:
    # Paced a second ahead, so that the cancel lands mid-stream.
    settings = tone_settings(max_lead_ms=1000, **PAUSES)
    text = " ".join(f"Sentence number {i} has some words." for i in range(40))
    async with run_server(settings, {"tone": tone_provider}) as server, connect(f"{server.ws_url}?timestamps=word") as ws:
        await receive(ws)
        await send(ws, type="text", text=text)
        transcript = Transcript()
        while sum(len(f) for f in transcript.frames()) < 2 * 24 * 600:  # 600 ms of audio
            transcript.items.append(await receive(ws))
        await send(ws, type="cancel", played_ms=250.0)
        await receive_until(ws, "cancelled", transcript)
        await send(ws, type="text", text="After the cancel.")
        await send(ws, type="end")
        after = await receive_all(ws)
    (cancelled,) = transcript.messages("cancelled")
    sent_ms = sum(len(f) for f in transcript.frames()) / 2 / 24.0
    assert cancelled["audio_ms"] == pytest.approx(sent_ms, abs=0.01)
    words = aligned_words(transcript)
    last_sent = [w for w in words if w["start_ms"] < sent_ms][-1]
    last_heard = [w for w in words if w["start_ms"] < 250.0][-1]
    assert {k: cancelled["last_sent"][k] for k in last_sent} == last_sent
    assert {k: cancelled["last_heard"][k] for k in last_heard} == last_heard
    heard = cancelled["last_heard"]
    assert text[heard["char_start"] : heard["char_end"]] == heard["text"]
    assert cancelled["played_ms"] == 250.0
    # The stream's timeline goes on after the cancel; the new text's offsets count what was sent.
    first_after = aligned_words(after)[0]
    assert first_after["start_ms"] >= sent_ms
    assert first_after["char_start"] == len(text) and first_after["text"] == "After"


async def test_sse_session_alignment_events_resume_and_delete_with_played_ms(paused_server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=paused_server.http_url) as http:
        refused = await http.post("/v1/tts/sessions", json={"timestamps": "always"})
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "bad_message"
        session = await create(http, timestamps="word", sample_rate=24000)
        await http.post(f"/v1/tts/sessions/{session}/text", json={"text": TEXT, "end": True})
        received = await read_with_drops(http, session, every=7)
    assert [e.id for e in received] == list(range(1, len(received) + 1))
    words = [dict(w, seq=e.data["seq"]) for e in received if e.kind == "alignment" for w in e.data["words"]]
    check_words(words, TEXT)
    audio = pcm_samples([e.audio for e in received if e.kind == "audio"])
    for word, onset in zip(words, beep_onsets_ms(audio, 24000), strict=True):
        assert abs(word["start_ms"] - onset) < 2.0


async def test_sse_delete_takes_the_playback_position(tone_provider: ToneProvider) -> None:
    settings = tone_settings(max_lead_ms=1000)
    text = " ".join(f"Sentence number {i} has words." for i in range(40))
    async with run_server(settings, {"tone": tone_provider}) as server, httpx.AsyncClient(base_url=server.http_url) as http:
        session = await create(http, timestamps="word")
        await http.post(f"/v1/tts/sessions/{session}/text", json={"text": text})
        bad = await http.delete(f"/v1/tts/sessions/{session}?played_ms=-5")
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_message"
        async with http.stream("GET", f"/v1/tts/sessions/{session}/events") as response:
            events = read_events(response.aiter_lines())
            seen = []
            while sum(1 for e in seen if e.kind == "audio") < 10:
                seen.append(await anext(events))
            assert (await http.delete(f"/v1/tts/sessions/{session}?played_ms=100")).status_code == 200
            while seen[-1].kind != "cancelled":
                seen.append(await anext(events))
    heard = seen[-1].data["last_heard"]
    # Words every 80 ms: "Sentence" at 0, "number" at 80, "0" at 160.
    assert (heard["text"], heard["seq"], heard["char_start"], heard["start_ms"]) == ("number", 0, 9, 80.0)
    assert seen[-1].data["last_sent"]["start_ms"] < seen[-1].data["audio_ms"]


async def test_one_shot_sse_stream_takes_timestamps(tone_server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=tone_server.http_url) as http:
        async with http.stream("POST", "/v1/tts/stream", json={"text": "One two. Three four.", "timestamps": "char"}) as response:
            events = [e async for e in read_events(response.aiter_lines())]
        async with http.stream("POST", "/v1/tts/stream?timestamps=word", content=b"Five six.", headers={"content-type": "text/plain"}) as response:
            plain = [e async for e in read_events(response.aiter_lines())]
    alignments = [e.data for e in events if e.kind == "alignment"]
    assert [w["text"] for a in alignments for w in a["words"]] == ["One", "two.", "Three", "four."]
    assert all(a["chars"] for a in alignments)
    assert [w["text"] for e in plain if e.kind == "alignment" for w in e.data["words"]] == ["Five", "six."]


async def test_models_say_which_providers_give_timestamps(tone_server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=tone_server.http_url) as http:
        models = {m["id"]: m for m in (await http.get("/v1/models")).json()["data"]}
    assert models["tone"]["capabilities"]["timestamps"] == ["word", "char"]


async def test_a_context_gets_its_own_timeline_and_offsets(paused_server: RunningServer) -> None:
    async with connect(f"{paused_server.ws_url}?timestamps=word&sample_rate=24000") as ws:
        await receive(ws)
        await send(ws, type="config", context="b", timestamps="word")
        await send(ws, type="text", context="b", text="Bee one two.")
        await send(ws, type="end", context="b")
        await send(ws, type="text", text="Main three four.")
        await send(ws, type="end")
        transcript = await asyncio.wait_for(receive_all(ws), 20)
    for context, text in ((None, "Main three four."), ("b", "Bee one two.")):
        words = [w for m in transcript.messages("alignment") if m.get("context") == context for w in m["words"]]
        assert [w["text"] for w in words] == text.split()
        assert words[0]["start_ms"] == pytest.approx(0.0, abs=2.0) and words[0]["char_start"] == 0


def test_beep_onsets_find_each_beep() -> None:
    """The check the tests above rely on, on known audio."""
    rate = 24000
    audio = np.zeros(rate, dtype=np.float32)
    for start_ms in (100, 300, 420):
        i = rate * start_ms // 1000
        audio[i : i + rate * 60 // 1000] = 0.3
    assert beep_onsets_ms(audio, rate) == [100.0, 300.0, 420.0]
