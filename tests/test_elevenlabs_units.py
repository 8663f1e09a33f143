"""ElevenLabs' protocol without sockets: URL → options, the conversation's contexts, renderings."""

from __future__ import annotations

import base64
import json

import pytest

from stream_server.media import EncodedFrame
from stream_server.protocol import Done, ErrorCode, ProtocolError
from stream_server.providers.tone import ToneProvider
from stream_server.session import Stopped
from stream_server.settings_loader import settings_from_raw
from stream_server.transports.compat.elevenlabs.protocol import (
    Answer,
    Authenticate,
    CloseSocket,
    Command,
    ElevenLabsConversation,
    Open,
    Send,
)
from stream_server.transports.compat.elevenlabs.request import Refused, output_format, speech_request

PROVIDERS = {"tone": ToneProvider()}


def settings(**raw: object):  # type: ignore[no-untyped-def]
    return settings_from_raw({"providers": ["tone"], "provider": "tone", **raw})


def say(conversation: ElevenLabsConversation, **message: object) -> list[object]:
    return conversation.receive(json.dumps(message))


@pytest.mark.parametrize(
    ("name", "expected"),
    [("pcm_24000", ("pcm", 24000)), ("ulaw_8000", ("mulaw", 8000)), ("alaw_8000", ("alaw", 8000)),
     ("mp3_44100_128", ("mp3", 44100)), ("opus_48000_64", ("ogg_opus", 48000))],
)  # fmt: skip
def test_output_formats_map_onto_the_servers(name: str, expected: tuple[str, int]) -> None:
    assert output_format(name) == expected


@pytest.mark.parametrize("name", ["pcm_32000", "ulaw_16000", "wav", "mp3_x", "opus_24000_64"])
def test_output_formats_it_cannot_make_are_refused(name: str) -> None:
    with pytest.raises(Refused) as refused:
        output_format(name)
    assert refused.value.status == 400


def test_voice_and_model_mapping() -> None:
    mapped = settings(elevenlabs_voice_map=["21m00Tcm4TlvDq8ikWAM=tone:low"])
    request = speech_request("21m00Tcm4TlvDq8ikWAM", {"model_id": "eleven_flash_v2_5"}, mapped, PROVIDERS, socket=True)
    assert (request.config.provider, request.config.voice) == ("tone", "low")
    assert speech_request("tone:beep", {}, mapped, PROVIDERS, socket=True).config.voice == "beep"
    assert speech_request("beep", {"model_id": "tone"}, mapped, PROVIDERS, socket=True).config.provider == "tone"
    with pytest.raises(Refused) as voice:
        speech_request("pNInz6obpgDQGcFmaJgB", {}, mapped, PROVIDERS, socket=True)
    assert (voice.value.status, voice.value.code) == (404, "voice_not_found")
    with pytest.raises(Refused) as model:
        speech_request("beep", {"model_id": "gpt-4"}, mapped, PROVIDERS, socket=True)
    assert model.value.code == "model_not_found"
    with pytest.raises(Refused):
        speech_request("beep", {"volume": "11"}, mapped, PROVIDERS, socket=True)


def test_inactivity_timeout_is_kept_to_elevenlabs_maximum() -> None:
    request = speech_request("beep", {"inactivity_timeout": "300"}, settings(), PROVIDERS, socket=True)
    assert request.inactivity_timeout_s == 180


def test_multi_contexts_open_on_their_first_message_and_the_cap_keeps_the_socket() -> None:
    conversation = ElevenLabsConversation(multi=True, max_contexts=2)
    assert say(conversation, text=" ", context_id="a", voice_settings={"speed": 1.1}, **{"xi-api-key": "k"}) == [
        Authenticate("k"), Open("a", 1.1)
    ]  # fmt: skip
    assert say(conversation, text="Hi. ", context_id="a") == [Command("a", "text", "Hi. ")]
    assert say(conversation, text=" ", context_id="b") == [Open("b", None)]
    (refused,) = say(conversation, text=" ", context_id="c")
    assert isinstance(refused, Answer) and refused.close is None
    assert json.loads(refused.message)["error"] == "max_active_conversations"
    assert json.loads(refused.message)["contextId"] == "c"
    # A keep-alive is not a close; closing `a` (text since its last flush) is a barge-in.
    assert say(conversation, text="", context_id="b") == [Command("b", "keepalive")]
    assert say(conversation, context_id="a", close_context=True) == [Command("a", "drop")]
    assert say(conversation, text=" ", context_id="c") == [Open("c", None)]  # a slot is free again
    assert say(conversation, text="Bye. ", context_id="c", flush=True) == [
        Command("c", "text", "Bye. "), Command("c", "flush")
    ]  # fmt: skip
    assert say(conversation, context_id="c", close_context=True) == [Command("c", "end")]  # flushed: plays out


def test_close_socket_waits_for_the_contexts() -> None:
    conversation = ElevenLabsConversation(multi=True, max_contexts=5)
    say(conversation, text="Hi. ", context_id="a", flush=True)
    assert say(conversation, close_socket=True) == [Command("a", "end")]
    assert say(conversation, text="more", context_id="a") == []  # closing: nothing more taken
    assert conversation.finished("a") == [CloseSocket(1000)]


def test_bad_input_is_answered_on_multi_and_closes_the_single_socket() -> None:
    multi = ElevenLabsConversation(multi=True, max_contexts=5)
    for bad in ("{nope", json.dumps({"text": 3}), json.dumps({"text": "x", "volume": 1})):
        (answer,) = [a for a in multi.receive(bad) if not isinstance(a, Authenticate)]
        assert isinstance(answer, Answer) and answer.close is None
        assert json.loads(answer.message)["error"] == "invalid_request"
    single = ElevenLabsConversation(multi=False, max_contexts=5)
    (_, answer) = say(single, text="x", context_id="a")
    assert isinstance(answer, Answer) and answer.close == 1008


def test_single_socket_ends_with_empty_text() -> None:
    conversation = ElevenLabsConversation(multi=False, max_contexts=5)
    assert say(conversation, text=" ") == [Authenticate(None), Open(None, None)]
    assert say(conversation, text="Hello. ", try_trigger_generation=True) == [Command(None, "text", "Hello. ")]
    assert say(conversation, text="") == [Command(None, "end")]


def test_renderings() -> None:
    multi = ElevenLabsConversation(multi=True, max_contexts=5)
    (audio,) = multi.render("a", EncodedFrame(b"\x01\x02", 20.0))
    assert isinstance(audio, Send)
    assert json.loads(audio.data) == {"audio": base64.b64encode(b"\x01\x02").decode(), "contextId": "a"}
    done = Done(segments=0, audio_ms=0, text_chars=0, elapsed_ms=0)
    assert multi.render("a", done) == [Send('{"isFinal":true,"contextId":"a"}')]
    single = ElevenLabsConversation(multi=False, max_contexts=5)
    assert single.render(None, done) == [Send('{"isFinal":true}'), CloseSocket(1000)]
    stopped = single.render(None, Stopped(ProtocolError(ErrorCode.IDLE_TIMEOUT, "no text for 20 s")))
    assert json.loads(stopped[0].data)["error"] == "input_timeout_exceeded"  # type: ignore[union-attr]
    assert isinstance(stopped[1], CloseSocket) and stopped[1].code == 1008


# -- alignment --------------------------------------------------------------------------------------


def test_alignment_spans_tile_the_timeline_and_each_word_ends_with_its_space() -> None:
    from stream_server.protocol import AlignedChar, AlignedWord, Alignment
    from stream_server.transports.compat.elevenlabs.alignment import AlignmentClock

    def aligned(*words: tuple[str, float, float]) -> Alignment:
        chars = [
            AlignedChar(char=c, start_ms=s + k * (e - s) / len(t), end_ms=s + (k + 1) * (e - s) / len(t))
            for t, s, e in words for k, c in enumerate(t)
        ]  # fmt: skip
        return Alignment(seq=0, words=[AlignedWord(text=t, start_ms=s, end_ms=e) for t, s, e in words], chars=chars)

    clock = AlignmentClock()
    assert clock.take() is None
    clock.add(aligned(("Hi", 10.0, 70.0)))
    clock.add(aligned(("you", 90.0, 150.0)))  # two before one audio message: one alignment
    first = clock.take()
    assert first is not None and clock.take() is None
    assert first["chars"] == ["H", "i", " ", "y", "o", "u", " "]
    assert first["charStartTimesMs"] == [10, 40, 70, 90, 110, 130, 150]
    clock.add(aligned(("there.", 400.0, 460.0)))  # after a pause
    second = clock.take()
    assert second is not None
    # Times restart at the previous span's end (150 ms): a client adding spans stays on time.
    assert second["charStartTimesMs"][0] == 250
    span = first["charStartTimesMs"][-1] + first["charDurationsMs"][-1]
    assert span + second["charStartTimesMs"][0] == 400
    clock.add(aligned(("dropped", 500.0, 560.0)))
    clock.drop()  # a barge-in: its audio is never sent
    assert clock.take() is None
