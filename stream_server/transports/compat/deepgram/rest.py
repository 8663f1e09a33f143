"""`POST /v1/speak`: Deepgram's REST call, so its SDKs and Pipecat's `DeepgramHttpTTSService`
and LiveKit's `deepgram.TTS().synthesize` work unchanged.

The body's `text` is one stream: audio streams back as each sentence is synthesized (chunked
transfer), in the format of the query's `encoding`/`container`/`sample_rate`. Errors come in
Deepgram's shape, `{"err_code", "err_msg", "request_id"}`.
"""

from __future__ import annotations

import logging
from typing import Annotated

import msgspec
from msgspec import Meta, Struct
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ....logs import log_event
from ....protocol import ErrorCode
from ....request_id import new_request_id, request_id_of
from ....security.guard import client_of
from ....server_state import ServerState
from ....text import split_segments
from ...http_common import HttpError, options_for, read_body, require_a_provider
from ...http_stream import StreamedResponse, open_stream, raw_audio, stream_response
from .request import Refused, speak_request

logger = logging.getLogger(__name__)

MAX_TEXT_CHARS = 2000  # as Deepgram's REST API


class SpeakBody(Struct, forbid_unknown_fields=True):
    text: Annotated[str, Meta(min_length=1, max_length=MAX_TEXT_CHARS)]


async def speak(request: Request) -> Response | StreamedResponse:
    state: ServerState = request.app.state.server
    request_id = request_id_of(request) or new_request_id()
    try:
        asked = speak_request(request.query_params, state.settings, state.providers, socket=False)
        body = await read_body(request, SpeakBody, state.settings.max_message_bytes)
        # An HTTP client takes the audio as fast as it comes.
        options = options_for(state, msgspec.structs.replace(asked.config, max_lead_ms=0))
        if not split_segments(body.text, language=options.language):
            raise HttpError(400, ErrorCode.EMPTY_INPUT, "`text` has nothing to speak (only whitespace)")
        require_a_provider(state, options)
        stream = await open_stream(state, options, "deepgram_rest", client_of(request), text=body.text)
    except Refused as exc:
        return JSONResponse(exc.body(request_id), status_code=exc.status, headers={"dg-request-id": request_id})
    except HttpError as exc:
        refusal = Refused(exc.status, exc.code, exc.message)
        headers = {"dg-request-id": request_id}
        if exc.retry_after_s is not None:
            headers["Retry-After"] = str(max(1, round(exc.retry_after_s + 0.5)))
        return JSONResponse(refusal.body(request_id), status_code=exc.status, headers=headers)
    log_event(logger, "speak.open", stream=stream.id, request=request_id, model=asked.model, format=options.format.name)

    audio = raw_audio(stream, "speak.segment_failed")

    headers = {"dg-request-id": request_id, "dg-model-name": asked.model, "dg-char-count": str(len(body.text))}
    return stream_response(state, stream, options.format.mime, audio, headers=headers)
