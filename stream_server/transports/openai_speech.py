"""`POST /v1/audio/speech`: OpenAI's speech API, so OpenAI clients and SDKs work unchanged.

The whole `input` is one stream: it is cut into sentences and the encoded audio streams back as
soon as the first sentence is synthesized (chunked transfer), or as `speech.audio.delta` events
with `stream_format: "sse"`. OpenAI's model and voice names map to this server's providers and
voices (`--speech-voice-map`); a provider's own name as `model` and its voice ids also work.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from typing import Annotated, Literal

import msgspec
from msgspec import Meta
from starlette.requests import Request
from starlette.responses import Response

from ..logs import log_event
from ..media import EncodedFrame
from ..protocol import Config, Done, Error, ErrorCode
from ..request_id import request_id_of
from ..security.guard import client_of
from ..server_state import ServerState
from ..session import Output
from ..text import split_segments
from .http_common import HttpError, options_for, read_body, refuse_query, require_a_provider
from .http_stream import StreamedResponse, open_stream, raw_audio, stream_response

logger = logging.getLogger(__name__)

# OpenAI's response formats, as ours; OpenAI sends all of them at 24 kHz.
FORMATS = {"mp3": "mp3", "opus": "ogg_opus", "aac": "aac", "flac": "flac", "wav": "wav", "pcm": "pcm"}
OPENAI_RATE = 24000
MAX_INPUT_CHARS = 4096  # as OpenAI's API
# OpenAI answers pcm as `audio/pcm`, and clients (LiveKit's plugin) know only that name; this
# server's own protocol says `audio/L16` (its `ready`, /v1/formats).
OPENAI_PCM_MIME = "audio/pcm"


class VoiceRef(msgspec.Struct, forbid_unknown_fields=True):
    id: str


class SpeechRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    model: str
    input: Annotated[str, Meta(min_length=1, max_length=MAX_INPUT_CHARS)]
    voice: str | VoiceRef
    response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] = "mp3"
    speed: Annotated[float, Meta(ge=0.25, le=4.0)] = 1.0
    instructions: str | None = None
    """Accepted for compatibility; the local providers have no style instructions."""
    stream_format: Literal["audio", "sse"] = "audio"


async def speech(request: Request) -> Response | StreamedResponse:
    state: ServerState = request.app.state.server
    try:
        refuse_query(request, where="the JSON body")
        body = await read_body(request, SpeechRequest, state.settings.max_message_bytes)
        options = options_for(state, _config(state, body))
        # What can be known before the status line is refused there: a 200 promises audio.
        if not split_segments(body.input, language=options.language):
            raise HttpError(400, ErrorCode.EMPTY_INPUT, "`input` has nothing to speak (only whitespace)")
        require_a_provider(state, options)
        stream = await open_stream(state, options, "speech", client_of(request), text=body.input)
    except HttpError as exc:
        return exc.response()
    log_event(
        logger, "speech.open", stream=stream.id, request=request_id_of(request), provider=options.provider,
        format=options.format.name,
    )

    audio = raw_audio(stream, "speech.segment_failed")

    def events(output: Output) -> bytes | None:
        if type(output) is EncodedFrame:
            return _sse({"type": "speech.audio.delta", "audio": base64.b64encode(output.data).decode()})
        if type(output) is Error:
            return _sse({"type": "error", "error": {"code": output.code, "message": output.message}})
        if type(output) is Done:
            words = len(body.input.split())
            # No tokenizer here: "tokens" are the input's words and the audio's 20 ms frames.
            frames = round(output.audio_ms / 20)
            usage = {"input_tokens": words, "output_tokens": frames, "total_tokens": words + frames}
            return _sse({"type": "speech.audio.done", "usage": usage})
        return None

    if body.stream_format == "sse":
        return stream_response(state, stream, "text/event-stream", events)
    mime = OPENAI_PCM_MIME if body.response_format == "pcm" else options.format.mime
    return stream_response(state, stream, mime, audio)


def _config(state: ServerState, body: SpeechRequest) -> Config:
    settings = state.settings
    provider = body.model if body.model in state.providers else settings.provider
    voice_name = body.voice.id if isinstance(body.voice, VoiceRef) else body.voice
    voices = {v.id for v in state.providers[provider].voices}
    mapped = dict(pair.split("=", 1) for pair in settings.speech_voice_map).get(voice_name)
    # A voice of the provider itself, else the configured mapping, else the provider's default.
    voice = voice_name if voice_name in voices else mapped if mapped in voices else None
    return Config(
        provider=provider,
        voice=voice,
        format=FORMATS[body.response_format],
        sample_rate=OPENAI_RATE if body.response_format != "opus" else None,
        speed=body.speed,
        max_lead_ms=0,  # an HTTP client takes the audio as fast as it comes
    )


def _sse(data: Mapping[str, object]) -> bytes:
    return b"data: " + msgspec.json.encode(data) + b"\n\n"

