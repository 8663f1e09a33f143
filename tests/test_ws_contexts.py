"""Several contexts on one /v1/tts/stream socket, against a real server: each context's audio
decoded back and told apart by its voice's pitch."""

from __future__ import annotations

from collections import defaultdict
from itertools import zip_longest
from typing import Any

import numpy as np
from websockets.asyncio.client import connect

from stream_server.providers.tone import SAMPLE_RATE, expected_duration_ms

from .conftest import RunningServer, run_server, tone_settings
from .helpers import Transcript, dominant_frequency, pcm_samples, receive, receive_all, receive_until, send

WORD_SAMPLES = SAMPLE_RATE * 80 // 1000  # a tone word: 60 ms beep, 20 ms gap
# Each segment's audio is the tone's, give or take the pipeline's last partial frame.
PER_SEGMENT_MS = 3.0
PITCHES = {"beep": (440.0, 440.0 * 23 / 12), "low": (220.0, 220.0 * 23 / 12)}


def audio_by_context(transcript: Transcript) -> dict[str | None, dict[int, list[bytes]]]:
    """Each context's frames by segment, read as a client must: a frame belongs to the context of
    the last `segment`, until its `segment_end` or `cancelled`. Checks that segments never nest."""
    audio: dict[str | None, dict[int, list[bytes]]] = defaultdict(dict)
    holder: tuple[str | None, int] | None = None
    for item in transcript.items:
        if isinstance(item, bytes):
            assert holder is not None, "audio frame outside any segment"
            audio[holder[0]][holder[1]].append(item)
            continue
        context = item.get("context")
        if item["type"] == "segment":
            assert holder is None, f"segment of {context!r} inside {holder}'s"
            holder = (context, item["seq"])
            audio[context][item["seq"]] = []
        elif item["type"] == "segment_end":
            assert holder == (context, item["seq"])
            holder = None
        elif item["type"] in ("cancelled", "done") and holder is not None and holder[0] == context:
            holder = None
    return audio


def assert_voice(frames: list[bytes], text: str, voice: str) -> None:
    """The frames are this segment's words, all of them, each a beep in `voice`'s pitch range."""
    samples = pcm_samples(frames)
    assert abs(len(samples) * 1000 / SAMPLE_RATE - expected_duration_ms(text)) <= PER_SEGMENT_MS, text
    low, high = PITCHES[voice]
    for start in range(0, len(samples) - WORD_SAMPLES // 2, WORD_SAMPLES):  # each whole word
        pitch = dominant_frequency(samples[start : start + WORD_SAMPLES * 3 // 4], SAMPLE_RATE)
        assert low - 15 <= pitch <= high + 15, f"{pitch:.0f} Hz in {voice}'s {text!r}"


def by_context(transcript: Transcript, kind: str) -> dict[str | None, list[dict[str, Any]]]:
    found: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for message in transcript.messages(kind):
        found[message.get("context")].append(message)
    return found


async def receive_until_done(ws: Any, contexts: set[str | None], transcript: Transcript) -> None:
    while not contexts <= {m.get("context") for m in transcript.messages("done")}:
        transcript.items.append(await receive(ws))


async def test_two_contexts_interleaving_text_each_get_their_own_audio_ready_and_done(tone_server: RunningServer) -> None:
    a_words = ["Alpha one two.", "Alpha three four five.", "Alpha six."]
    b_words = ["Bravo one.", "Bravo two three four.", "Bravo five six."]
    transcript = Transcript()
    sent_chars = {"a": 0, "b": 0}
    async with connect(f"{tone_server.ws_url}?sample_rate=24000") as ws:
        transcript.items.append(await receive(ws))  # the default stream's ready
        await send(ws, type="config", context="b", voice="low")
        for a, b in zip(a_words, b_words):  # text of both, interleaved, in small pieces
            for piece_a, piece_b in zip_longest(a.split(" "), b.split(" "), fillvalue=""):
                await send(ws, type="text", context="a", text=piece_a + " ")
                await send(ws, type="text", context="b", text=piece_b + " ")
                sent_chars["a"] += len(piece_a) + 1
                sent_chars["b"] += len(piece_b) + 1
        await send(ws, type="end", context="a")
        await send(ws, type="end", context="b")
        await receive_until_done(ws, {"a", "b"}, transcript)
        # Both contexts are over; the socket is not: the default stream still works.
        await send(ws, type="text", text="Default here.")
        await send(ws, type="end")
        transcript.items += (await receive_all(ws)).items
        assert ws.close_code == 1000

    readies = by_context(transcript, "ready")
    assert readies["a"][0]["voice"] == "beep" and readies["b"][0]["voice"] == "low" and None in readies
    audio = audio_by_context(transcript)
    segments = by_context(transcript, "segment")
    for context, voice, sentences in (("a", "beep", a_words), ("b", "low", b_words)):
        assert [m["text"] for m in segments[context]] == sentences
        assert [m["seq"] for m in segments[context]] == [0, 1, 2]  # each context counts its own
        for seq, text in enumerate(sentences):
            assert_voice(audio[context][seq], text, voice)
        # A context's `ready` comes before any of its audio; its `done` after all of it.
        items = transcript.items
        assert items.index(readies[context][0]) < items.index(segments[context][0])
        (done,) = by_context(transcript, "done")[context]
        assert done["segments"] == 3
        assert abs(done["audio_ms"] - sum(expected_duration_ms(t) for t in sentences)) <= 3 * PER_SEGMENT_MS
        assert done["text_chars"] == sent_chars[context]
    assert_voice(audio[None][0], "Default here.", "beep")
    assert by_context(transcript, "done")[None][0]["text_chars"] == len("Default here.")


async def test_cancelling_one_context_leaves_the_other_playing(tone_provider: Any) -> None:
    # Paced, so that the cancel arrives while both still have audio to send.
    long_a = " ".join(f"Alpha word {i} here." for i in range(12))
    long_b = " ".join(f"Bravo word {i} here." for i in range(12))
    async with run_server(tone_settings(max_lead_ms=200), {"tone": tone_provider}) as server:
        async with connect(f"{server.ws_url}?sample_rate=24000") as ws:
            transcript = await receive_until(ws, "ready")
            await send(ws, type="text", context="a", text=long_a)
            await send(ws, type="config", context="b", voice="low")
            await send(ws, type="text", context="b", text=long_b)
            await send(ws, type="end", context="b")
            while not any(m.get("context") == "a" for m in transcript.messages("segment_end")):
                transcript.items.append(await receive(ws))
            await send(ws, type="cancel", context="a")
            while not transcript.messages("cancelled"):
                transcript.items.append(await receive(ws))
            cancelled_at = len(transcript.items)
            await send(ws, type="end", context="a")
            await receive_until_done(ws, {"a", "b"}, transcript)
            await send(ws, type="end")
            transcript.items += (await receive_all(ws)).items

    (cancelled,) = transcript.messages("cancelled")
    assert cancelled["context"] == "a"
    after = transcript.items[cancelled_at:]
    assert not [m for m in after if isinstance(m, dict) and m.get("context") == "a" and m["type"] == "segment"]
    audio = audio_by_context(transcript)
    dones = by_context(transcript, "done")
    # b played on to its end, every segment whole, in its own voice.
    sentences_b = [f"Bravo word {i} here." for i in range(12)]
    assert dones["b"][0]["segments"] == 12
    assert abs(dones["b"][0]["audio_ms"] - expected_duration_ms(long_b)) <= 12 * PER_SEGMENT_MS
    for seq, text in enumerate(sentences_b):
        assert_voice(audio["b"][seq], text, "low")
    # a stopped where it was cancelled: what it sent before is whole and its own.
    assert 1 <= dones["a"][0]["segments"] < 12
    assert dones["a"][0]["audio_ms"] < expected_duration_ms(long_a)
    for seq, frames in audio["a"].items():
        if any(m.get("seq") == seq for m in by_context(transcript, "segment_end")["a"]):
            assert_voice(frames, f"Alpha word {seq} here.", "beep")
    # b's audio went on after a's cancel.
    assert any(isinstance(m, bytes) for m in after)


async def test_the_context_past_the_cap_is_refused_and_the_socket_and_others_go_on(tone_provider: Any) -> None:
    async with run_server(tone_settings(max_contexts=2), {"tone": tone_provider}) as server:
        async with connect(f"{server.ws_url}?sample_rate=24000") as ws:
            transcript = await receive_until(ws, "ready")
            await send(ws, type="text", context="a", text="First one.")
            await send(ws, type="text", context="b", text="Second one.")
            await send(ws, type="text", context="c", text="Third one.")
            while not transcript.messages("error"):
                transcript.items.append(await receive(ws))
            (refused,) = transcript.messages("error")
            assert refused["code"] == "too_many_contexts" and refused["context"] == "c"
            assert "at most 2" in refused["message"]
            assert len(server.state.streams) == 3  # the default stream, a and b: nothing opened for c
            await send(ws, type="end", context="a")
            await receive_until_done(ws, {"a"}, transcript)
            # a is over: c may open now.
            await send(ws, type="text", context="c", text="Third one.")
            await send(ws, type="end", context="c")
            await send(ws, type="end", context="b")
            await receive_until_done(ws, {"b", "c"}, transcript)
            await send(ws, type="end")
            transcript.items += (await receive_all(ws)).items
            assert ws.close_code == 1000
    audio = audio_by_context(transcript)
    for context, text in (("a", "First one."), ("b", "Second one."), ("c", "Third one.")):
        assert_voice(audio[context][0], text, "beep")
    assert [m["code"] for m in transcript.messages("error")] == ["too_many_contexts"]


async def test_a_bad_or_unknown_context_gets_a_clear_error_and_changes_nothing(tone_server: RunningServer) -> None:
    async with connect(f"{tone_server.ws_url}?sample_rate=24000") as ws:
        transcript = await receive_until(ws, "ready")
        await send(ws, type="text", context="a", text="Kept here.")
        await send(ws, type="text", context="no spaces allowed", text="Dropped.")
        await send(ws, type="flush", context="")
        await send(ws, type="cancel", context="never-opened")
        await send(ws, type="end", context="a")
        await receive_until_done(ws, {"a"}, transcript)
        await send(ws, type="end", context="a")  # a is finished: its id is no longer open
        while len(transcript.messages("error")) < 4:
            transcript.items.append(await receive(ws))
        await send(ws, type="end")
        transcript.items += (await receive_all(ws)).items
        assert ws.close_code == 1000
    errors = [(m["code"], m.get("context")) for m in transcript.messages("error")]
    assert errors == [
        ("bad_message", None),
        ("bad_message", None),
        ("unknown_context", "never-opened"),
        ("unknown_context", "a"),
    ]
    assert all("$.context" in m["message"] for m in transcript.messages("error")[:2])
    audio = audio_by_context(transcript)
    assert_voice(audio["a"][0], "Kept here.", "beep")
    assert set(audio) == {"a"}


async def test_end_without_a_context_ends_every_context_then_closes(tone_server: RunningServer) -> None:
    async with connect(f"{tone_server.ws_url}?sample_rate=24000") as ws:
        await receive(ws)
        await send(ws, type="text", context="a", text="One two three")  # no sentence end yet
        await send(ws, type="text", context="b", text="Four five.")
        await send(ws, type="text", text="Six")
        await send(ws, type="end")
        await send(ws, type="text", context="c", text="Too late.")
        transcript = await receive_all(ws)
        assert ws.close_code == 1000
    dones = by_context(transcript, "done")
    assert set(dones) == {"a", "b", None}
    assert transcript.items[-1] in [d[0] for d in dones.values()]  # the close follows the last done
    audio = audio_by_context(transcript)
    assert_voice(audio["a"][0], "One two three", "beep")
    assert_voice(audio["b"][0], "Four five.", "beep")
    assert_voice(audio[None][0], "Six", "beep")
    assert [(m["code"], m.get("context")) for m in transcript.messages("error")] == [("stream_ended", "c")]


async def test_a_socket_without_contexts_sees_no_context_field(tone_server: RunningServer) -> None:
    async with connect(tone_server.ws_url) as ws:
        await send(ws, type="text", text="Hello there.")
        await send(ws, type="cancel")
        await send(ws, type="text", text="Again.")
        await send(ws, type="end")
        transcript = await receive_all(ws)
    assert transcript.messages() and all("context" not in m for m in transcript.messages())
    assert np.isfinite(pcm_samples(transcript.frames())).all()
