"""The Wyoming adapter's sans-I/O parts, without sockets: framing, the conversation's state
machine, voice names, and where the listener may listen."""

from __future__ import annotations

import json

import pytest
from wyoming.audio import AudioChunk, AudioStart
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeVoice

from stream_server.__main__ import load_server_settings
from stream_server.media import EncodedFrame
from stream_server.protocol import Done, Error, ProtocolError, SegmentEnd, SegmentStart, Warning
from stream_server.providers.base import VoiceInfo
from stream_server.providers.tone import ToneProvider
from stream_server.settings import SettingsError
from stream_server.transports.wyoming.conversation import Close, Conversation, Feed, Finish, Open, Phase, Reply
from stream_server.transports.wyoming.discovery import SERVICE_TYPE, announced, announced_ip, service_name
from stream_server.transports.wyoming.endpoint import (
    TcpAddress,
    UnixAddress,
    allowed_networks,
    parse_uri,
    peer_allowed,
)
from stream_server.transports.wyoming.framing import EventDecoder, FrameError, encode_event
from stream_server.transports.wyoming.voices import Voices, wyoming_language

# -- framing ---------------------------------------------------------------------------------------


def decode_all(decoder: EventDecoder) -> list[Event]:
    events = []
    while (event := decoder.next_event()) is not None:
        events.append(event)
    return events


def test_events_written_by_the_package_decode_byte_by_byte() -> None:
    events = [
        Synthesize(text="Grüße, world.", voice=SynthesizeVoice(name="beep")).event(),
        AudioChunk(rate=22050, width=2, channels=1, audio=bytes(range(256)) * 4).event(),
        Describe().event(),
    ]
    wire = b"".join(encode_event(e) for e in events)
    assert json.loads(wire.split(b"\n", 1)[0])["version"]  # the package's header, version included
    decoder = EventDecoder(limit=4096)
    got: list[Event] = []
    for i in range(len(wire)):
        decoder.feed(wire[i : i + 1])
        got += decode_all(decoder)
    assert [(e.type, e.data, e.payload) for e in got] == [(e.type, e.data, e.payload) for e in events]


def test_an_oversized_payload_is_skipped_and_the_next_event_is_found() -> None:
    big = Event(type="audio-chunk", data={"rate": 1}, payload=b"x" * 10_000)
    wire = encode_event(big) + encode_event(Describe().event())
    decoder = EventDecoder(limit=1000)
    decoder.feed(wire[:1500])
    with pytest.raises(FrameError) as raised:
        decoder.next_event()
    assert raised.value.code == "message_too_large" and not raised.value.fatal
    assert decoder.buffered == 0  # nothing of it is held
    decoder.feed(wire[1500:])
    assert [e.type for e in decode_all(decoder)] == ["describe"]


@pytest.mark.parametrize(
    "wire",
    [b"not json\n", b"[1, 2]\n", b'{"data": {}}\n', b'{"type": "x", "payload_length": -1}\n', b'{"type": "x", "data_length": "7"}\n'],
)
def test_a_header_that_cannot_be_read_is_fatal(wire: bytes) -> None:
    decoder = EventDecoder(limit=1000)
    decoder.feed(wire + encode_event(Describe().event()))
    with pytest.raises(FrameError) as raised:
        decoder.next_event()
    assert raised.value.fatal and raised.value.code == "bad_message"
    assert decoder.next_event() is None  # takes nothing more


def test_a_header_line_over_the_limit_is_fatal_before_its_end_arrives() -> None:
    decoder = EventDecoder(limit=100)
    decoder.feed(b'{"type": "' + b"a" * 200)
    with pytest.raises(FrameError) as raised:
        decoder.next_event()
    assert raised.value.fatal and raised.value.code == "message_too_large"


def test_data_that_is_not_an_object_is_refused_and_skipped() -> None:
    header = json.dumps({"type": "synthesize", "data_length": 4}).encode() + b"\n"
    decoder = EventDecoder(limit=1000)
    decoder.feed(header + b"[1] " + encode_event(Describe().event()))
    with pytest.raises(FrameError) as raised:
        decoder.next_event()
    assert not raised.value.fatal
    assert [e.type for e in decode_all(decoder)] == ["describe"]


# -- voices ----------------------------------------------------------------------------------------


class FakeVoices:
    """A provider's voice list, for naming tests: only `voices` is read."""

    def __init__(self, *voices: VoiceInfo) -> None:
        self.voices = voices


def test_voice_names_are_ids_and_provider_ids_where_two_providers_share_one() -> None:
    voices = Voices(
        {
            "piper": FakeVoices(VoiceInfo("en_US-joe-medium", 22050, "en-us"), VoiceInfo("shared", 22050, "de")),
            "openai": FakeVoices(VoiceInfo("alloy", 24000, "en"), VoiceInfo("shared", 24000, "en")),
        },  # type: ignore[arg-type]
        default_provider="piper",
        default_voice=None,
    )
    names = [v.name for v in voices.info().tts[0].voices]
    assert names == ["en_US-joe-medium", "piper:shared", "alloy", "openai:shared"]
    assert voices.resolve(SynthesizeVoice(name="alloy")) == ("openai", "alloy")
    assert voices.resolve(SynthesizeVoice(name="openai:alloy")) == ("openai", "alloy")
    assert voices.resolve(SynthesizeVoice(name="piper:shared")) == ("piper", "shared")
    assert voices.resolve(None) is None and voices.resolve(SynthesizeVoice()) is None
    # A language alone: the default provider's voices first.
    assert voices.resolve(SynthesizeVoice(language="en_US")) == ("piper", "en_US-joe-medium")
    assert voices.resolve(SynthesizeVoice(language="de")) == ("piper", "shared")
    for bad in (SynthesizeVoice(name="nobody"), SynthesizeVoice(language="fr")):
        with pytest.raises(ProtocolError) as raised:
            voices.resolve(bad)
        assert raised.value.code == "unknown_voice"


def test_languages_are_spelled_as_wyoming_voices_spell_them() -> None:
    assert [wyoming_language(x) for x in ("en-us", "en_US", "pt-br", "de", "zh-Hans-CN")] == [
        "en_US", "en_US", "pt_BR", "de", "zh_Hans_CN"
    ]  # fmt: skip


# -- the conversation --------------------------------------------------------------------------------


@pytest.fixture
def conversation() -> Conversation:
    return Conversation(Voices({"tone": ToneProvider()}, "tone", None))


def frame(data: bytes = b"\1\0" * 480) -> EncodedFrame:
    return EncodedFrame(data=data, duration_ms=20.0)  # type: ignore[call-arg]


def kinds(events: list[Event]) -> list[str]:
    return [e.type for e in events]


def render_all(conversation: Conversation, outputs: list[object]) -> list[Event]:
    return [event for output in outputs for event in conversation.render(output)]  # type: ignore[arg-type]


def test_describe_is_answered_with_info_in_any_phase(conversation: Conversation) -> None:
    (reply,) = conversation.receive(Describe().event())
    assert isinstance(reply, Reply) and Info.from_event(reply.event).tts[0].supports_synthesize_streaming
    conversation.receive(SynthesizeStart().event())
    assert isinstance(conversation.receive(Describe().event())[0], Reply)


def test_one_shot_is_one_audio_block(conversation: Conversation) -> None:
    (opened,) = conversation.receive(Synthesize(text="One. Two.", voice=SynthesizeVoice(name="low")).event())
    assert opened == Open(("tone", "low"), "One. Two.")
    conversation.opened(24000)
    events = render_all(
        conversation,
        [SegmentStart(seq=0, text="One."), frame(), SegmentEnd(seq=0, audio_ms=20), Warning(code="w", message="m"),
         SegmentStart(seq=1, text="Two."), frame(), frame(), SegmentEnd(seq=1, audio_ms=40),
         Done(segments=2, audio_ms=60, text_chars=9, elapsed_ms=1)],
    )  # fmt: skip
    assert kinds(events) == ["audio-start", "audio-chunk", "audio-chunk", "audio-chunk", "audio-stop"]
    start = AudioStart.from_event(events[0])
    assert (start.rate, start.width, start.channels) == (24000, 2, 1)
    assert AudioChunk.from_event(events[1]).audio == frame().data
    conversation.over()
    assert conversation.phase is Phase.IDLE


def test_one_shot_without_audio_still_ends_with_audio_stop(conversation: Conversation) -> None:
    conversation.receive(Synthesize(text="  ").event())
    conversation.opened(24000)
    assert kinds(conversation.render(Done(segments=0, audio_ms=0, text_chars=2, elapsed_ms=1))) == [
        "audio-start", "audio-stop"
    ]  # fmt: skip


def test_streaming_answers_per_sentence_and_ignores_the_compatibility_synthesize(conversation: Conversation) -> None:
    assert conversation.receive(SynthesizeStart(voice=SynthesizeVoice(name="beep")).event()) == [Open(("tone", "beep"), None)]
    conversation.opened(24000)
    assert conversation.receive(SynthesizeChunk(text="Hi. ").event()) == [Feed("Hi. ")]
    assert conversation.receive(Synthesize(text="Hi. Bye.").event()) == []
    assert conversation.receive(SynthesizeStop().event()) == [Finish()]
    events = render_all(
        conversation,
        [SegmentStart(seq=0, text="Hi."), frame(), SegmentEnd(seq=0, audio_ms=20), Error(code="provider_error", message="x", seq=1),
         SegmentStart(seq=2, text="Bye."), frame(), SegmentEnd(seq=2, audio_ms=20),
         Done(segments=2, audio_ms=40, text_chars=8, elapsed_ms=1)],
    )  # fmt: skip
    assert kinds(events) == [
        "audio-start", "audio-chunk", "audio-stop", "error", "audio-start", "audio-chunk", "audio-stop", "synthesize-stopped"
    ]  # fmt: skip


def test_events_out_of_place_are_refused_without_changing_the_phase(conversation: Conversation) -> None:
    for event in (SynthesizeChunk(text="x").event(), SynthesizeStop().event()):
        (reply,) = conversation.receive(event)
        assert isinstance(reply, Reply) and reply.event.data["code"] == "bad_message"
    assert conversation.phase is Phase.IDLE
    conversation.receive(Synthesize(text="One.").event())
    (busy,) = conversation.receive(SynthesizeStart().event())
    assert isinstance(busy, Reply) and busy.event.data["code"] == "request_in_progress"
    assert conversation.phase is Phase.ONE_SHOT


def test_a_refused_request_closes_the_connection(conversation: Conversation) -> None:
    refused = conversation.receive(Synthesize(text="x", voice=SynthesizeVoice(name="nobody")).event())
    assert [type(c) for c in refused] == [Reply, Close]
    assert conversation.receive(Event(type="synthesize", data={"text": 3}))[-1] == Close()
    conversation.receive(SynthesizeStart().event())
    assert [type(c) for c in conversation.refused(ProtocolError("server_busy", "full"))] == [Reply, Close]
    assert conversation.phase is Phase.IDLE


def test_malformed_data_and_unknown_types_are_bad_messages(conversation: Conversation) -> None:
    conversation.receive(SynthesizeStart().event())
    for event in (Event(type="synthesize-chunk", data={"text": 5}), Event(type="synthesize-chunk"), Event(type="bogus")):
        (reply,) = conversation.receive(event)
        assert isinstance(reply, Reply) and reply.event.type == "error" and reply.event.data["code"] == "bad_message"
    assert conversation.phase is Phase.STREAMING


# -- where it listens ----------------------------------------------------------------------------------


def test_uris() -> None:
    assert parse_uri("tcp://127.0.0.1:10200") == TcpAddress("127.0.0.1", 10200)
    assert parse_uri("unix:///run/tts.sock") == UnixAddress("/run/tts.sock")
    for bad in ("tcp://127.0.0.1", "http://x:1", "unix://", "tcp://:10200"):
        with pytest.raises(SettingsError, match="--wyoming-uri"):
            parse_uri(bad)


def test_a_non_loopback_listener_needs_an_allow_list_or_the_insecure_flag() -> None:
    assert load_server_settings(["--wyoming-uri", "tcp://127.0.0.1:10200"]).wyoming_uri
    with pytest.raises(SettingsError, match="--wyoming-allow"):
        load_server_settings(["--wyoming-uri", "tcp://0.0.0.0:10200"])
    load_server_settings(["--wyoming-uri", "tcp://0.0.0.0:10200", "--wyoming-allow", "192.168.1.0/24"])
    load_server_settings(["--wyoming-uri", "tcp://0.0.0.0:10200", "--insecure-wyoming-open"])
    with pytest.raises(SettingsError, match="--wyoming-allow"):
        load_server_settings(["--wyoming-uri", "tcp://0.0.0.0:1", "--wyoming-allow", "not-a-network"])
    with pytest.raises(SettingsError, match="--wyoming-uri too"):
        load_server_settings(["--wyoming-zeroconf"])


def test_peers_outside_the_allow_list_are_refused() -> None:
    settings = load_server_settings(["--wyoming-uri", "tcp://0.0.0.0:1", "--wyoming-allow", "192.168.1.0/24,fd00::/8"])
    networks = allowed_networks(settings)
    assert peer_allowed("192.168.1.20", networks, False)
    assert peer_allowed("::ffff:192.168.1.20", networks, False)
    assert peer_allowed("fd00::1", networks, False)
    assert peer_allowed("127.0.0.1", networks, False) and peer_allowed("::1", networks, False)
    assert peer_allowed(None, networks, False)  # a unix socket
    assert not peer_allowed("10.0.0.5", networks, False)
    assert peer_allowed("10.0.0.5", networks, True)


def test_the_zeroconf_service_name() -> None:
    assert service_name("kitchen.local") == f"stream_server-kitchen.{SERVICE_TYPE}"
    assert SERVICE_TYPE == "_wyoming._tcp.local."
    assert announced_ip(TcpAddress("127.0.0.1", 10200)) == "127.0.0.1"


async def test_the_zeroconf_announcement_is_found_by_a_browser_and_withdrawn() -> None:
    from zeroconf import IPVersion
    from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

    # On loopback only: the test sends nothing to the network.
    address = TcpAddress("127.0.0.1", 10200)
    async with announced(address, "testhost", interfaces=["127.0.0.1"]) as name:
        browser = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
        try:
            found = AsyncServiceInfo(SERVICE_TYPE, name)
            assert await found.async_request(browser.zeroconf, 3000)
        finally:
            await browser.async_close()
    assert name == service_name("testhost")
    assert (found.port, found.parsed_addresses()) == (10200, ["127.0.0.1"])


def test_select_program_takes_the_tts_program_only(conversation: Conversation) -> None:
    assert conversation.receive(Event(type="select-program", data={"name": "stream_server"})) == []
    (reply,) = conversation.receive(Event(type="select-program", data={"name": "whisper"}))
    assert isinstance(reply, Reply) and reply.event.data["code"] == "bad_message"
