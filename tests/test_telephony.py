"""The telephony bridge (clients/telephony) between an emulated Twilio and a real stream_server.

Everything is real and in this event loop: the speech server (tone or Piper) and the bridge under
uvicorn on loopback ports, the emulated Twilio peer over a real WebSocket, the bot's calls over
HTTP. Playback is real time, so audio takes as long as it lasts: texts are short.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest
import uvicorn
from starlette.applications import Starlette
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus
from websockets.http11 import Request, Response

from clients.telephony import BridgeOptions, create_bridge_app
from clients.telephony.call import Call
from clients.telephony.ledger import SegmentLedger, SegmentStatus, mark_name, mark_seq
from clients.telephony.peer_checks import OutboundChecker, TwilioViolation
from clients.telephony.playout import Framer, PlayoutClock
from clients.telephony.registry import CallRegistry
from clients.telephony.twilio_peer import TwilioPeer, twilio_call
from clients.telephony.twilio_protocol import FRAME_BYTES, MULAW_SILENCE, MediaFormat
from clients.telephony.twilio_signature import compute_signature, is_valid_signature, signed_url_forms
from stream_server.providers import Provider
from stream_server.providers.tone import ToneProvider
from stream_server.settings import Settings

from .conftest import RunningServer, bound_port, run_server, serving, tone_settings
from .helpers import assert_speech_like, receive_all, send, wait_for

LEAD_MS = 200.0
# The peer's playback advances in 20 ms ticks and starts a tick after the first frame arrives, and
# the bridge may send one frame past its lead: what the peer holds can exceed the lead by ~40 ms.
LEAD_TOLERANCE_MS = 80.0
BYTES_PER_MS = 8


@dataclass
class RunningBridge:
    app: Starlette
    port: int

    @property
    def twilio_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/twilio"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def registry(self) -> CallRegistry:
        return self.app.state.registry  # type: ignore[no-any-return]

    def call(self, sid: str) -> Call:
        call = self.registry.find(sid)
        assert call is not None, f"no call {sid}"
        return call


@asynccontextmanager
async def run_bridge(server_url: str, **options: Any) -> AsyncIterator[RunningBridge]:
    app = create_bridge_app(BridgeOptions(server_url=server_url, **options))
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    async with serving(config) as server:
        yield RunningBridge(app, bound_port(server))


@asynccontextmanager
async def bot_client(bridge: RunningBridge, token: str | None = None) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=bridge.http_url, headers=headers, timeout=10) as client:
        yield client


@asynccontextmanager
async def a_call(
    settings: Settings,
    providers: dict[str, Provider],
    *,
    lead_ms: float = LEAD_MS,
    max_lead_ms: float | None = LEAD_MS + LEAD_TOLERANCE_MS,
) -> AsyncIterator[tuple[RunningServer, RunningBridge, httpx.AsyncClient, TwilioPeer]]:
    """A speech server, a bridge to it, the bot's HTTP client and an emulated call, once the bridge has the call."""
    async with (
        run_server(settings, providers) as server,
        run_bridge(server.ws_url, lead_ms=lead_ms) as bridge,
        bot_client(bridge) as bot,
        twilio_call(bridge.twilio_url, max_lead_ms=max_lead_ms) as peer,
    ):
        await wait_for(lambda: bridge.registry.find(peer.call_sid) is not None)
        yield server, bridge, bot, peer


async def say(bot: httpx.AsyncClient, call_sid: str, *chunks: str, end: bool = True) -> None:
    for chunk in chunks:
        response = await bot.post(f"/calls/{call_sid}/text", json={"text": chunk})
        assert response.status_code == 202, response.text
    if end:
        assert (await bot.post(f"/calls/{call_sid}/end")).status_code == 202


async def reference_segments(server: RunningServer, text: str) -> list[bytes]:
    """Each segment's μ-law as the server makes it for `text` on a fresh stream, padded as Twilio gets it."""
    async with connect(f"{server.ws_url}?format=mulaw&sample_rate=8000&frame_ms=20") as ws:
        await send(ws, type="text", text=text)
        await send(ws, type="end")
        transcript = await receive_all(ws)
    padded = []
    for frames in transcript.frames_by_segment().values():
        audio = b"".join(frames)
        padded.append(audio + bytes([MULAW_SILENCE]) * (-len(audio) % FRAME_BYTES))
    return padded


def heard_marks(peer: TwilioPeer) -> list[str]:
    return [m.name for m in peer.marks if not m.cleared]


def decode_mulaw(data: bytes) -> np.ndarray:
    decoder = av.CodecContext.create("pcm_mulaw", "r")
    decoder.sample_rate = 8000
    decoder.layout = "mono"
    frames = decoder.decode(av.Packet(data))
    return np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.float32) / 32768.0


# --- whole calls ---------------------------------------------------------------------------------


async def test_full_call_plays_every_segment_with_marks_at_real_time(tone_provider: ToneProvider) -> None:
    # A 5 ms pause makes each segment end mid-frame, so the bridge must pad its last frame.
    async with a_call(tone_settings(sentence_pause_ms=5), {"tone": tone_provider}) as (server, bridge, bot, peer):
        await say(bot, peer.call_sid, "One two three. Fo", "ur five. Six.")
        await peer.wait_until(lambda: len(heard_marks(peer)) == 3)

        expected = await reference_segments(server, "One two three. Four five. Six.")
        assert [len(s) % FRAME_BYTES for s in expected] == [0, 0, 0]
        assert all(s.endswith(bytes([MULAW_SILENCE]) * 40) for s in expected), "the last frame is padded"
        assert peer.violations == []
        assert heard_marks(peer) == [mark_name(0), mark_name(1), mark_name(2)]
        assert peer.played == b"".join(expected)
        # Each mark is echoed exactly where its segment ends, at that moment of real-time playback.
        ends = np.cumsum([len(s) for s in expected])
        assert [m.played_bytes for m in peer.marks] == list(ends)
        assert peer.playback_started_at is not None
        for mark in peer.marks:
            elapsed_ms = (mark.at - peer.playback_started_at) * 1000
            assert abs(elapsed_ms - mark.played_bytes / BYTES_PER_MS - mark.stalled_ms) < 60, (mark, elapsed_ms)

        for sid in (peer.call_sid, peer.stream_sid):
            state = (await bot.get(f"/calls/{sid}")).json()
            assert (state["call_sid"], state["stream_sid"]) == (peer.call_sid, peer.stream_sid)
            heard = state["report"]["heard"]
            assert [(s["seq"], s["text"], s["confirmed"]) for s in heard] == [
                (0, "One two three.", True),
                (1, "Four five.", True),
                (2, "Six.", True),
            ]
            assert [s["audio_ms"] for s in heard] == [len(s) / BYTES_PER_MS for s in expected]
            assert [s["heard_words"] for s in heard] == [["One", "two", "three."], ["Four", "five."], ["Six."]]
            assert state["report"]["partly_heard"] == state["report"]["not_heard"] == state["report"]["pending"] == []
            assert state["inbound_media_frames"] > 0
            assert state["marks_echoed"] == 3

        # The call's text has ended; the bot API says so instead of losing the text.
        late = await bot.post(f"/calls/{peer.call_sid}/text", json={"text": "More."})
        assert (late.status_code, late.json()["error"]["code"]) == (409, "input_ended")
        bad = await bot.post(f"/calls/{peer.call_sid}/text", json={"txt": "typo"})
        assert (bad.status_code, bad.json()["error"]["code"]) == (400, "bad_request")


async def test_barge_in_mid_segment_clears_cancels_and_plays_no_stale_audio(tone_provider: ToneProvider) -> None:
    long_sentence = " ".join(["word"] * 30) + "."  # 2.4 s of audio
    async with a_call(tone_settings(), {"tone": tone_provider}) as (server, bridge, bot, peer):
        await say(bot, peer.call_sid, long_sentence, " And then some more words here.", end=False)
        await peer.wait_until(lambda: peer.played_ms >= 600)

        response = await bot.post(f"/calls/{peer.call_sid}/barge-in")
        assert response.status_code == 200, response.text
        barge_in = response.json()
        assert barge_in["upstream"] == "cancelled"
        await peer.wait_until(lambda: len(peer.clears) == 1)
        clear = peer.clears[0]
        assert peer.buffered_ms == 0
        assert clear.dropped_bytes <= (LEAD_MS + LEAD_TOLERANCE_MS) * BYTES_PER_MS, "a clear drops only the lead"

        first, *later = barge_in["interrupted"]
        assert (first["seq"], first["status"], first["text"]) == (0, "partly_heard", long_sentence)
        # The bridge's estimate of what was heard matches what the peer had played at the clear.
        assert abs(first["heard_ms"] - clear.played_bytes / BYTES_PER_MS) < 60
        # The words heard: those whose beep had begun (one every 80 ms) when the peer cleared.
        heard_words = int(clear.played_bytes / BYTES_PER_MS // 80) + 1
        assert abs(len(first["heard_words"]) - heard_words) <= 1 and set(first["heard_words"]) == {"word"}
        assert first["heard_text"] == " ".join(first["heard_words"])
        assert all(s["heard_words"] in ([], None) for s in later)
        assert first["heard_ms"] < first["audio_ms"] < 2400
        assert all(s["status"] == "not_heard" for s in later)
        assert barge_in["report"]["heard"] == [] and barge_in["report"]["pending"] == []

        # New text after the barge-in: exactly its audio is played, nothing of the cancelled text.
        await say(bot, peer.call_sid, "Okay.")
        call = bridge.call(peer.call_sid)
        # Announced by the server, not just given to it (then it has no seq yet).
        await wait_for(lambda: (last := call.state().segments[-1]).text == "Okay." and last.seq is not None)
        new_seq = call.state().segments[-1].seq
        assert new_seq is not None
        await peer.wait_until(lambda: mark_name(new_seq) in heard_marks(peer))
        (okay,) = await reference_segments(server, "Okay.")
        assert peer.played[clear.played_bytes :] == okay
        assert new_seq > 1, "the server's seq kept counting past the cancelled segments"
        assert peer.violations == []
        await wait_for(lambda: call.state().report.pending == [])
        final = call.state()
        assert [(s.seq, s.status) for s in final.report.heard] == [(new_seq, SegmentStatus.HEARD)]


def accounted_texts(state: dict[str, Any]) -> list[str]:
    """The texts of a call's segments, checking that the report puts each in exactly one list."""
    report = state["report"]
    listed = [r for kind in ("heard", "partly_heard", "not_heard", "pending") for r in report[kind]]
    key = lambda r: (r["seq"] is None, r["seq"] or 0, r["text"])  # noqa: E731
    assert sorted(listed, key=key) == sorted(state["segments"], key=key)
    return [r["text"] for r in state["segments"]]


async def test_barge_in_accounts_for_every_segment_once_and_the_playback_clock_matches_the_peer(
    tone_provider: ToneProvider,
) -> None:
    # The server paces (300 ms lead), so at the barge-in later segments are still at the server:
    # numbered there and never announced, or announced while the cancel was on its way.
    sentences = ["First sentence is here.", "Second one follows it.", "Third sentence."]
    sentences += [f"Sentence number {n} comes here." for n in range(4, 16)] + ["Fourth sentence, the last one."]
    text = " ".join(sentences)
    async with a_call(tone_settings(max_lead_ms=300), {"tone": tone_provider}) as (server, bridge, bot, peer):
        response = await bot.post(f"/calls/{peer.call_sid}/text", json={"text": text, "flush": True})
        assert response.status_code == 202
        await peer.wait_until(lambda: peer.played_ms >= 1200)
        before = (await bot.get(f"/calls/{peer.call_sid}")).json()
        assert " ".join(accounted_texts(before)) == text, "the text the server has not cut yet is pending"

        barge_in = (await bot.post(f"/calls/{peer.call_sid}/barge-in")).json()
        assert barge_in["upstream"] == "cancelled"
        after = (await bot.get(f"/calls/{peer.call_sid}")).json()
        assert barge_in["report"] == after["report"]
        report = after["report"]
        assert report["pending"] == [] and report["heard"] != [] and report["not_heard"] != []
        assert " ".join(accounted_texts(after)) == text
        heard_count = len(report["heard"])
        assert [r["text"] for r in barge_in["interrupted"]] == accounted_texts(after)[heard_count:]
        (clear,) = peer.clears
        *played_out, cut = report["partly_heard"]  # a mark the clear overtook: heard by the clock
        assert all(r["heard_ms"] >= r["audio_ms"] - 20 for r in played_out)
        assert abs(cut["start_ms"] + cut["heard_ms"] - clear.played_bytes / BYTES_PER_MS) < 60

        # After the barge-in the bridge's playback position is where the peer stopped, not where
        # the bridge had sent to: the cut segment counts only its heard part.
        await say(bot, peer.call_sid, "Okay.")
        call = bridge.call(peer.call_sid)
        await wait_for(lambda: any(s.text == "Okay." and s.status == "heard" for s in call.state().segments))
        state = (await bot.get(f"/calls/{peer.call_sid}")).json()
        okay = next(s for s in state["segments"] if s["text"] == "Okay.")
        assert abs(okay["start_ms"] - clear.played_bytes / BYTES_PER_MS) < 60
        assert abs(state["played_ms"] - peer.played_ms) < 60
        assert " ".join(accounted_texts(state)) == text + " Okay."
        assert peer.violations == []


async def test_marks_returned_by_clear_do_not_count_as_heard(tone_provider: ToneProvider) -> None:
    words = ["One.", "Two.", "Three.", "Four.", "Five.", "Six.", "Seven.", "Eight.", "Nine.", "Ten."]
    async with a_call(tone_settings(), {"tone": tone_provider}, max_lead_ms=None) as (server, bridge, bot, peer):
        await say(bot, peer.call_sid, " ".join(words), end=False)
        # 80 ms segments under a 200 ms lead: marks wait in Twilio's buffer behind unplayed audio.
        await peer.wait_until(lambda: peer.played_ms >= 100 and len(peer.pending_marks()) >= 2)
        barge_in = (await bot.post(f"/calls/{peer.call_sid}/barge-in")).json()
        await peer.wait_until(lambda: len(peer.clears) == 1)
        (clear,) = peer.clears
        assert len(clear.returned_marks) >= 2
        reached = heard_marks(peer)

        await say(bot, peer.call_sid, "Okay.")
        call = bridge.call(peer.call_sid)
        await wait_for(lambda: any(s.text == "Okay." and s.status == "heard" for s in call.state().segments))
        state = call.state()
        by_seq = {s.seq: s for s in state.segments if s.seq is not None}
        heard = [mark_name(s.seq) for s in state.segments if s.status == "heard"]
        assert heard[-1] == mark_name(max(by_seq)) and set(heard[:-1]) <= set(reached)
        # A mark echoed just before the clear may reach the bridge after it: then the clock vouches.
        for name in set(reached) - set(heard):
            record = by_seq[mark_seq(name)]  # type: ignore[index]
            assert record.status == "partly_heard" and record.heard_ms >= record.audio_ms - 20
        returned = [mark_seq(name) for name in clear.returned_marks]
        assert {s["seq"] for s in barge_in["interrupted"]} >= set(returned)
        assert not any(by_seq[seq].confirmed for seq in returned if seq is not None)
        # The last returned mark sat at least one 80 ms segment past playback: not heard by any measure.
        last_returned = by_seq[returned[-1]]  # type: ignore[index]
        assert last_returned.status in ("not_heard", "partly_heard")
        assert peer.violations == []


async def test_piper_speech_reaches_the_caller_as_speech(piper_provider: Provider) -> None:
    text = "Hello there, how are you doing today?"
    settings = tone_settings(providers=("piper",), provider="piper", sentence_pause_ms=200)
    async with a_call(settings, {"piper": piper_provider}) as (server, bridge, bot, peer):
        await say(bot, peer.call_sid, "Hello there, how are ", "you doing today?")
        await peer.wait_until(lambda: heard_marks(peer) == [mark_name(0)], timeout=30)
        assert peer.violations == []
        assert_speech_like(decode_mulaw(peer.played), 8000, text)


# --- pacing ----------------------------------------------------------------------------------------


async def test_pacing_keeps_the_lead_small(tone_provider: ToneProvider) -> None:
    lead_ms = 100.0
    call = a_call(tone_settings(), {"tone": tone_provider}, lead_ms=lead_ms, max_lead_ms=lead_ms + LEAD_TOLERANCE_MS)
    async with call as (server, bridge, bot, peer):
        await say(bot, peer.call_sid, " ".join(["beep"] * 15) + ".")  # 1.2 s
        await peer.wait_until(lambda: heard_marks(peer) == [mark_name(0)])
        assert peer.violations == []
        # Near the lead, not far below it (that would underrun) nor above it.
        assert lead_ms - 20 <= peer.max_buffered_ms <= lead_ms + LEAD_TOLERANCE_MS
        assert peer.played == b"".join(await reference_segments(server, " ".join(["beep"] * 15) + "."))


async def test_peer_catches_an_unpaced_bridge(tone_provider: ToneProvider) -> None:
    call = a_call(tone_settings(), {"tone": tone_provider}, lead_ms=10_000, max_lead_ms=300)
    async with call as (server, bridge, bot, peer):
        await say(bot, peer.call_sid, " ".join(["beep"] * 15) + ".")
        await peer.wait_until(lambda: peer.violations != [])
        assert "ahead of playback, over 300 ms" in peer.violations[0]


def test_playout_clock_paces_and_tracks_playback() -> None:
    now = [100.0]
    clock = PlayoutClock(lead_ms=100, clock=lambda: now[0])
    assert clock.delay_s() == 0
    for _ in range(6):
        clock.sent(20)
    assert clock.ahead_ms() == 120 and clock.delay_s() == pytest.approx(0.02)
    now[0] += 0.05
    assert clock.played_ms() == pytest.approx(50) and clock.delay_s() == 0
    now[0] += 1.0  # ran dry: playback stops at what was sent, and resumes with the next frame
    assert clock.played_ms() == 120
    clock.sent(20)
    assert clock.played_ms() == pytest.approx(120) and clock.ahead_ms() == pytest.approx(20)
    now[0] += 0.01
    clock.sent(20)
    clock.cleared()  # the 30 ms sent past playback were dropped, never played
    assert clock.ahead_ms() == 0 and clock.played_ms() == pytest.approx(130)
    clock.sent(20)
    assert clock.sent_ms == pytest.approx(150) and clock.played_ms() == pytest.approx(130)


def test_framer_cuts_exact_frames_and_pads_the_last() -> None:
    framer = Framer()
    assert framer.push(b"\x01" * 100) == []
    assert framer.push(b"\x02" * 300) == [b"\x01" * 100 + b"\x02" * 60, b"\x02" * 160]
    assert framer.finish() == b"\x02" * 80 + bytes([MULAW_SILENCE]) * 80
    assert framer.finish() is None


def test_ledger_settles_segments_on_barge_in() -> None:
    ledger = SegmentLedger()
    for seq, text in enumerate(["A.", "B.", "C.", "D."]):
        ledger.announce(seq, text)
    ledger.started(0, 0)
    ledger.add_audio(0, 100)
    ledger.sent_fully(0)
    ledger.started(1, 100)
    ledger.add_audio(1, 100)
    ledger.sent_fully(1)
    ledger.started(2, 200)
    ledger.add_audio(2, 60)
    assert ledger.mark_echoed(mark_name(0)) is not None
    settled = ledger.interrupt(played_ms=130)
    assert [(r.seq, r.status, r.heard_ms) for r in settled] == [
        (1, SegmentStatus.PARTLY_HEARD, 30),
        (2, SegmentStatus.NOT_HEARD, 0),
        (3, SegmentStatus.NOT_HEARD, 0),
    ]
    # Twilio returns segment 1's mark after the clear: that is not playback.
    assert ledger.mark_echoed(mark_name(1)) is None
    report = ledger.report()
    assert [r.seq for r in report.heard] == [0] and [r.seq for r in report.partly_heard] == [1]
    assert ledger.mark_echoed("someone-else's-mark") is None


def test_ledger_accounts_for_text_the_server_never_announced() -> None:
    ledger = SegmentLedger()
    ledger.given("One. Two. Three. ")
    ledger.given("Four, five")
    ledger.announce(0, "One.")
    assert [(r.seq, r.text, r.status) for r in ledger.report().pending] == [
        (0, "One.", SegmentStatus.QUEUED),
        (None, "Two. Three. Four, five", SegmentStatus.QUEUED),
    ]
    assert [r.seq for r in ledger.interrupt(played_ms=0)] == [0]
    ledger.announce(1, "Two.", stale=True)  # already on its way when the server took the cancel
    settled = ledger.drop_unsegmented()
    assert [(r.seq, r.text, r.status) for r in settled] == [
        (0, "One.", SegmentStatus.NOT_HEARD),
        (1, "Two.", SegmentStatus.NOT_HEARD),
        (None, "Three. Four, five", SegmentStatus.NOT_HEARD),
    ]
    assert ledger.report().pending == [] and ledger.records() == settled
    ledger.given("Six.")
    ledger.announce(5, "Six.")
    assert [r.text for r in ledger.records()] == ["One.", "Two.", "Three. Four, five", "Six."]
    assert ledger.drop_unsegmented() == settled, "nothing more to drop"


# --- the emulated Twilio's checks ------------------------------------------------------------------

SID = "MZ" + "0" * 32
FRAME = bytes(range(160))


def media(payload: bytes | str, **extra: Any) -> str:
    text = payload if isinstance(payload, str) else base64.b64encode(payload).decode()
    return json.dumps({"event": "media", "streamSid": SID, "media": {"payload": text, **extra}})


@pytest.mark.parametrize(
    ("message", "complaint"),
    [
        (FRAME, "binary frame"),
        ("not json", "not a Twilio"),
        (json.dumps({"event": "play", "streamSid": SID}), "not a Twilio"),
        (json.dumps({"event": "clear", "streamSid": "MZother"}), "streamSid"),
        (media(FRAME[:159]), "159 bytes"),
        (media(FRAME + b"\xff"), "161 bytes"),
        (media("not/base64!"), "not base64"),
        (media(b"RIFF\xff\xff\xff\xffWAVEfmt " + FRAME[16:]), "container header"),
        (media(FRAME, track="outbound"), "not a Twilio"),
        (json.dumps({"event": "mark", "streamSid": SID, "mark": {"name": ""}}), "without a name"),
        (json.dumps({"event": "mark", "streamSid": SID}), "not a Twilio"),
    ],
)
def test_checker_rejects_what_twilio_would(message: str | bytes, complaint: str) -> None:
    checker = OutboundChecker(SID)
    with pytest.raises(TwilioViolation, match=complaint):
        checker.check(message)


def test_checker_accepts_twilio_messages_and_finds_a_header_split_across_frames() -> None:
    checker = OutboundChecker(SID)
    assert checker.check(media(FRAME))[1] == FRAME
    assert checker.check(json.dumps({"event": "mark", "streamSid": SID, "mark": {"name": "seg-0"}}))[1] == b""
    assert checker.check(json.dumps({"event": "clear", "streamSid": SID}))[1] == b""
    checker.check(media(b"\x00" * 158 + b"RI"))
    with pytest.raises(TwilioViolation, match="container header"):
        checker.check(media(b"FF" + b"\x00" * 158))


# --- refusals, errors and clean-up --------------------------------------------------------------------


async def test_a_stream_that_is_not_mulaw_8k_is_refused(tone_server: RunningServer) -> None:
    async with (
        run_bridge(tone_server.ws_url) as bridge,
        bot_client(bridge) as bot,
        twilio_call(bridge.twilio_url, media_format=MediaFormat("audio/x-l16", 16000, 1)) as peer,
    ):
        await peer.wait_until(lambda: peer.close_code is not None)
        assert peer.close_code == 1008
        assert "audio/x-l16 16000 Hz" in peer.close_reason
        assert len(bridge.registry) == 0
        assert (await bot.get(f"/calls/{peer.call_sid}")).status_code == 404
        assert (await tone_server.health())["streams"] == 0, "no server stream was opened"
        assert peer.received == []


async def test_bot_api_errors_are_json(tone_server: RunningServer) -> None:
    async with run_bridge(tone_server.ws_url, bot_token="s3cret") as bridge:
        async with bot_client(bridge) as anonymous:
            refused = await anonymous.get("/calls/CA123")
            assert refused.status_code == 401
            assert refused.json()["error"]["code"] == "unauthorized"
            assert refused.headers["www-authenticate"] == "Bearer"
        async with bot_client(bridge, "wrong") as wrong:
            assert (await wrong.post("/calls/CA123/barge-in")).status_code == 401
        async with bot_client(bridge, "s3cret") as bot:
            for method, path in [
                ("GET", "/calls/CA123"),
                ("POST", "/calls/CA123/text"),
                ("POST", "/calls/MZ1/end"),
                ("POST", "/calls/CA123/barge-in"),
            ]:
                response = await bot.request(method, path, json={"text": "hi"})
                assert response.status_code == 404
                assert response.headers["content-type"] == "application/json"
                assert response.json()["error"]["code"] == "unknown_call"
                assert "CA123" in response.json()["error"]["message"] or "MZ1" in response.json()["error"]["message"]
            nowhere = await bot.get("/nowhere")
            assert (nowhere.status_code, nowhere.json()["error"]["code"]) == (404, "not_found")
            assert (await bot.get("/healthz")).json() == {"status": "ok", "calls": 0, "refused_handshakes": 0}


@pytest.mark.parametrize("hang_up", ["stop", "close"])
async def test_call_state_is_freed_when_the_stream_ends(tone_provider: ToneProvider, hang_up: str) -> None:
    async with (
        run_server(tone_settings(), {"tone": tone_provider}) as server,
        run_bridge(server.ws_url) as bridge,
        bot_client(bridge) as bot,
    ):
        async with twilio_call(bridge.twilio_url) as peer:
            await wait_for(lambda: bridge.registry.find(peer.call_sid) is not None)
            assert len(server.state.streams) == 1
            await say(bot, peer.call_sid, "One two.", end=False)
            await peer.wait_until(lambda: heard_marks(peer) == [mark_name(0)])
            if hang_up == "stop":
                await peer.stop()
            else:
                await peer._connection.close()  # a dropped socket, no `stop`
            await wait_for(lambda: len(bridge.registry) == 0, timeout=5)
        for sid in (peer.call_sid, peer.stream_sid):
            assert (await bot.get(f"/calls/{sid}")).status_code == 404
        await wait_for(lambda: not server.state.streams, timeout=5)


async def test_the_api_key_goes_upstream_and_a_refusal_closes_the_twilio_stream() -> None:
    seen: list[str | None] = []

    def refuse(connection: ServerConnection, request: Request) -> Response:
        seen.append(request.headers.get("Authorization"))
        return Response(401, "Unauthorized", Headers({"Content-Length": "0"}), b"")

    async with serve(lambda connection: connection.close(), "127.0.0.1", 0, process_request=refuse) as fake:
        port = fake.sockets[0].getsockname()[1]
        url = f"ws://127.0.0.1:{port}/v1/tts/stream?voice=low"
        async with run_bridge(url, api_key="sk-test") as bridge, twilio_call(bridge.twilio_url) as peer:
            await peer.wait_until(lambda: peer.close_code is not None)
    assert seen == ["Bearer sk-test"]
    assert (peer.close_code, peer.close_reason) == (1011, "speech server unavailable")


# --- Twilio's signature on /twilio -------------------------------------------------------------------

AUTH_TOKEN = "test-auth-token"


def test_signature_matches_twilio_published_example_and_a_hand_computed_vector() -> None:
    # The example of Twilio's request-validation docs (twilio-php's validation guide): a POST's
    # parameters are appended sorted by name, as name + value.
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+14158675309",
        "Digits": "1234",
        "From": "+14158675309",
        "To": "+18005551212",
    }
    published_url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert compute_signature("12345", published_url, params) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert is_valid_signature("12345", published_url, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", params)

    # A Media Stream's upgrade has no body: the signature is over the wss:// URL alone, query included.
    url = "wss://voice.example.com/twilio?call=7"
    by_hand = base64.b64encode(hmac.new(AUTH_TOKEN.encode(), url.encode(), hashlib.sha1).digest()).decode()
    assert by_hand == "IKoNBLWqbgpgqZq3jUw2BWb0NeQ="
    assert compute_signature(AUTH_TOKEN, url) == by_hand
    assert is_valid_signature(AUTH_TOKEN, url, by_hand)
    # Twilio may have signed the URL with its port or without: both are accepted, either way round.
    assert signed_url_forms(url) == (url, "wss://voice.example.com:443/twilio?call=7")
    assert signed_url_forms("ws://127.0.0.1:8080/twilio") == ("ws://127.0.0.1/twilio", "ws://127.0.0.1:8080/twilio")
    assert is_valid_signature(AUTH_TOKEN, "wss://voice.example.com:443/twilio?call=7", by_hand)
    with_port = compute_signature(AUTH_TOKEN, "wss://voice.example.com:443/twilio?call=7")
    assert is_valid_signature(AUTH_TOKEN, url, with_port)
    # Like Twilio's SDKs, the port-less form drops any port, a non-default one too: only the port may differ.
    assert is_valid_signature(AUTH_TOKEN, "wss://voice.example.com:8443/twilio?call=7", by_hand)
    # Anything else is not Twilio's signature of this request.
    for other_url in (
        "wss://voice.example.com/twilio?call=8",
        "wss://voice.example.com/twilio",
        "https://voice.example.com/twilio?call=7",
        "wss://evil.example.com/twilio?call=7",
        "wss://voice.example.com/twilio/?call=7",
    ):
        assert not is_valid_signature(AUTH_TOKEN, other_url, by_hand), other_url
    assert not is_valid_signature("another-token", url, by_hand)
    assert not is_valid_signature(AUTH_TOKEN, url, None)
    assert not is_valid_signature(AUTH_TOKEN, url, "")
    assert not is_valid_signature(AUTH_TOKEN, "ws://host:notaport/twilio", by_hand)


@pytest.mark.parametrize(
    ("public_url", "query"),
    [(None, ""), (None, "?call=7"), ("wss://voice.example.com", ""), ("wss://voice.example.com:443/edge/", "?a=b")],
)
async def test_a_signed_peer_gets_through_and_the_call_plays(
    tone_provider: ToneProvider, public_url: str | None, query: str
) -> None:
    async with (
        run_server(tone_settings(), {"tone": tone_provider}) as server,
        run_bridge(server.ws_url, twilio_auth_token=AUTH_TOKEN, public_url=public_url) as bridge,
        bot_client(bridge) as bot,
    ):
        # Behind a proxy, Twilio signs the public URL (as TwiML gave it), not the one the bridge sees.
        signed = None if public_url is None else public_url.rstrip("/") + "/twilio" + query
        async with twilio_call(bridge.twilio_url + query, auth_token=AUTH_TOKEN, signed_url=signed) as peer:
            await wait_for(lambda: bridge.registry.find(peer.call_sid) is not None)
            await say(bot, peer.call_sid, "One two.")
            await peer.wait_until(lambda: heard_marks(peer) == [mark_name(0)])
            assert peer.played == b"".join(await reference_segments(server, "One two."))
            assert peer.violations == []
        assert (await bot.get("/healthz")).json()["refused_handshakes"] == 0


@pytest.mark.parametrize("forgery", ["unsigned", "wrong token", "other query string", "other host"])
async def test_a_handshake_not_signed_by_twilio_is_refused_with_403_before_any_stream(
    forgery: str, caplog: pytest.LogCaptureFixture
) -> None:
    upstream_handshakes: list[str] = []

    def refuse(connection: ServerConnection, request: Request) -> Response:
        upstream_handshakes.append(request.path)
        return Response(401, "Unauthorized", Headers({"Content-Length": "0"}), b"")

    async with serve(lambda connection: connection.close(), "127.0.0.1", 0, process_request=refuse) as fake:
        port = fake.sockets[0].getsockname()[1]
        async with (
            run_bridge(f"ws://127.0.0.1:{port}/v1/tts/stream", twilio_auth_token=AUTH_TOKEN) as bridge,
            bot_client(bridge) as bot,
        ):
            url = bridge.twilio_url + "?call=1"
            token, signed = {
                "unsigned": (None, None),
                "wrong token": ("not-the-token", None),
                "other query string": (AUTH_TOKEN, bridge.twilio_url + "?call=2"),
                "other host": (AUTH_TOKEN, url.replace("127.0.0.1", "localhost")),
            }[forgery]
            with pytest.raises(InvalidStatus) as refused:
                async with twilio_call(url, auth_token=token, signed_url=signed):
                    pass
            response = refused.value.response
            assert response.status_code == 403
            assert json.loads(response.body or b"")["error"]["code"] == "forbidden"
            assert (await bot.get("/healthz")).json()["refused_handshakes"] == 1
            assert len(bridge.registry) == 0
            assert upstream_handshakes == [], "a refused handshake opened no server stream"
            logged = [r.getMessage() for r in caplog.records if "refused a /twilio handshake" in r.getMessage()]
            assert len(logged) == 1 and "X-Twilio-Signature" in logged[0]
            if token is not None:
                forged = compute_signature(token, signed or url)
                assert forged not in caplog.text, "the signature is never logged"
            assert AUTH_TOKEN not in caplog.text

            # The same bridge lets Twilio's own signature through, to the (refusing) speech server.
            async with twilio_call(url, auth_token=AUTH_TOKEN) as peer:
                await peer.wait_until(lambda: peer.close_code is not None)
            assert (peer.close_code, peer.close_reason) == (1011, "speech server unavailable")
            assert [path.split("?")[0] for path in upstream_handshakes] == ["/v1/tts/stream"]


async def test_a_server_without_denial_responses_refuses_by_closing_before_accept(tone_server: RunningServer) -> None:
    app = create_bridge_app(BridgeOptions(server_url=tone_server.ws_url, twilio_auth_token=AUTH_TOKEN))

    async def without_denial_extension(scope: Any, receive: Any, send: Any) -> None:
        await app({**scope, "extensions": {}}, receive, send)

    config = uvicorn.Config(without_denial_extension, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    async with serving(config) as server:
        url = f"ws://127.0.0.1:{bound_port(server)}/twilio"
        with pytest.raises(InvalidStatus) as refused:
            async with twilio_call(url, auth_token="not-the-token"):
                pass
        assert refused.value.response.status_code == 403
        async with twilio_call(url, auth_token=AUTH_TOKEN) as peer:
            await wait_for(lambda: app.state.registry.find(peer.call_sid) is not None)
        assert app.state.handshakes.refused == 1


async def run_bridge_process(*args: str, env_token: str | None = None) -> tuple[int | None, str]:
    """`python -m clients.telephony ...` on a free port: (exit code or None if it started, its output)."""
    env = {k: v for k, v in os.environ.items() if k not in ("TWILIO_AUTH_TOKEN", "TELEPHONY_BOT_TOKEN")}
    if env_token is not None:
        env["TWILIO_AUTH_TOKEN"] = env_token
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "clients.telephony",
        "--port",
        "0",
        "--server",
        "ws://127.0.0.1:9/v1/tts/stream",
        *args,
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    output: list[str] = []
    try:
        async with asyncio.timeout(30):
            async for raw in process.stdout:
                output.append(raw.decode(errors="replace"))
                if "Application startup complete" in output[-1]:
                    return None, "".join(output)
            return await process.wait(), "".join(output)
    finally:
        if process.returncode is None:
            process.terminate()
            async with asyncio.timeout(10):
                await process.wait()


async def test_an_open_bridge_refuses_to_start_on_a_public_address() -> None:
    code, output = await run_bridge_process("--host", "0.0.0.0")
    assert code == 2, output
    assert "--insecure-no-twilio-auth" in output and "--twilio-auth-token" in output
    assert "Application startup complete" not in output

    code, output = await run_bridge_process("--host", "0.0.0.0", "--insecure-no-twilio-auth")
    assert code == 2, output  # the bot API is open too
    assert "--insecure-no-bot-auth" in output and "--bot-token" in output

    code, output = await run_bridge_process("--host", "0.0.0.0", "--insecure-no-twilio-auth", "--insecure-no-bot-auth")
    assert code is None, output
    assert "/twilio is open" in output

    code, output = await run_bridge_process(
        "--host", "0.0.0.0", "--bot-token", "bot-secret-value", env_token="env-secret-token-value"
    )  # fmt: skip
    assert code is None, output
    assert "/twilio is open" not in output and "env-secret-token-value" not in output

    code, output = await run_bridge_process("--public-url", "https://voice.example.com/twilio?x=1")
    assert code == 2 and "--public-url" in output, output


# --- the emulated peer's command line --------------------------------------------------------------


async def run_peer(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "clients.telephony.twilio_peer", "--seconds", "5", *args,
        cwd=Path(__file__).resolve().parent.parent,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, stderr.decode()


async def test_the_peer_command_reports_expected_failures_in_one_line(tone_server: RunningServer) -> None:
    with socket.socket() as probe:  # bound, never listening: connections to it are refused
        probe.bind(("127.0.0.1", 0))
        code, stderr = await run_peer("--bridge", f"ws://127.0.0.1:{probe.getsockname()[1]}/twilio", "--say", "Hi.")
    assert (code, stderr.count("\n")) == (1, 1) and "connection refused" in stderr

    async with run_bridge(tone_server.ws_url, twilio_auth_token=AUTH_TOKEN) as bridge:
        code, stderr = await run_peer("--bridge", bridge.twilio_url, "--say", "Hi.")
    assert (code, stderr.count("\n")) == (1, 1) and "HTTP 403" in stderr and "--auth-token" in stderr

    async with run_bridge(tone_server.ws_url, bot_token="s3cret") as bridge:
        code, stderr = await run_peer("--bridge", bridge.twilio_url, "--say", "Hi.")
    assert (code, stderr.count("\n")) == (1, 1) and "HTTP 401" in stderr and "--bot-token" in stderr

    code, stderr = await run_peer("--bridge", "http://127.0.0.1:1/twilio")
    assert code == 2 and "ws:// or wss://" in stderr and "Traceback" not in stderr


def test_the_bridge_command_logs_json_lines_like_the_server() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "clients.telephony", "--port", "0"],
        cwd=Path(__file__).resolve().parent.parent, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        lines = []
        for line in process.stderr:
            lines.append(json.loads(line))  # every line is one JSON object
            if "Uvicorn running on" in lines[-1]["event"]:
                break
    finally:
        process.terminate()
        process.wait(timeout=20)
        if process.stderr is not None:
            process.stderr.close()
    assert [e["level"] for e in lines if e["logger"] == "clients.telephony.app"] == ["warning"]
    assert {"ts", "level", "logger", "event"} <= set(lines[0])
