"""`POST /v1/text-to-speech/{voice_id}/stream`: ElevenLabs' streaming REST call, so the
`elevenlabs` SDK's `client.text_to_speech.stream(...)` (and Pipecat's `ElevenLabsHttpTTSService`)
work unchanged.

The body's `text` is one stream: audio streams back as each sentence is synthesized (chunked
transfer), in the query's `output_format`. `model_id` and `voice_settings.speed` are taken as
on the socket; the body's other fields are accepted and change nothing. Errors come in
ElevenLabs' shape, `{"detail": {"status", "message"}}` (422 for a body that does not parse).
"""

from __future__ import annotations

import logging
from typing import Annotated

import msgspec
from msgspec import Meta, Struct
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ....logs import log_event
from ....media import EncodedFrame
from ....protocol import Error, ErrorCode
from ....request_id import new_request_id, request_id_of
from ....security.guard import client_of
from ....server_state import ServerState
from ....session import Output
from ....text import split_segments
from ...http_common import HttpError, options_for, read_body, require_a_provider
from ...http_stream import StreamedResponse, open_stream, stream_response
from .protocol import DictionaryLocator, VoiceSettings
from .request import Refused, speech_request, voice_speed

logger = logging.getLogger(__name__)

MAX_TEXT_CHARS = 10_000


class SpeechBody(Struct, forbid_unknown_fields=True):
    text: Annotated[str, Meta(min_length=1, max_length=MAX_TEXT_CHARS)]
    model_id: str | None = None
    voice_settings: VoiceSettings | None = None
    # Accepted so that the SDK's calls work; they change nothing here.
    language_code: str | None = None
    pronunciation_dictionary_locators: list[DictionaryLocator] | None = None
    seed: int | None = None
    previous_text: str | None = None
    next_text: str | None = None
    previous_request_ids: list[str] | None = None
    next_request_ids: list[str] | None = None
    use_pvc_as_ivc: bool | None = None
    apply_text_normalization: str | None = None
    apply_language_text_normalization: bool | None = None


async def speech_stream(request: Request) -> Response | StreamedResponse:
    state: ServerState = request.app.state.server
    request_id = request_id_of(request) or new_request_id()
    voice_id = request.path_params["voice_id"]
    try:
        body = await read_body(request, SpeechBody, state.settings.max_message_bytes)
        asked = speech_request(
            voice_id, request.query_params, state.settings, state.providers, socket=False, model_id=body.model_id
        )
        speed = voice_speed(body.voice_settings.speed if body.voice_settings else None)
        # An HTTP client takes the audio as fast as it comes.
        options = options_for(state, msgspec.structs.replace(asked.config, speed=speed, max_lead_ms=0))
        if not split_segments(body.text, language=options.language):
            raise Refused(400, "invalid_request", "`text` has nothing to speak (only whitespace)")
        require_a_provider(state, options)
        stream = await open_stream(state, options, "elevenlabs_rest", client_of(request), text=body.text)
    except Refused as exc:
        return JSONResponse(exc.body(), status_code=exc.status, headers={"request-id": request_id})
    except HttpError as exc:
        status = 422 if exc.code == ErrorCode.BAD_MESSAGE else exc.status
        headers = {"request-id": request_id}
        if exc.retry_after_s is not None:
            headers["Retry-After"] = str(max(1, round(exc.retry_after_s + 0.5)))
        return JSONResponse(Refused(status, exc.code, exc.message).body(), status_code=status, headers=headers)
    log_event(logger, "elevenlabs.speech", stream=stream.id, model=asked.model_id[:64], format=options.format.name)

    def audio(output: Output) -> bytes | None:
        if type(output) is EncodedFrame:
            return output.data
        if type(output) is Error:
            # The status line is long gone: the audio ends short, and the log says why.
            log_event(logger, "elevenlabs.segment_failed", level=logging.WARNING, stream=stream.id, code=output.code)
        return None

    headers = {"request-id": request_id, "character-cost": str(len(body.text))}
    return stream_response(state, stream, options.format.mime, audio, headers=headers)
