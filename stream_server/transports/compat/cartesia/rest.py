"""`POST /tts/bytes` and `POST /tts/sse`: Cartesia's HTTP calls, so LiveKit's `cartesia.TTS().synthesize`
and Cartesia's SDKs work unchanged.

The body is a generation request (`model_id`, `transcript`, `voice`, `output_format`, ...); its
transcript is one stream. `/tts/bytes` streams the audio back as each sentence is synthesized
(raw, WAV or MP3, chunked transfer); `/tts/sse` sends Cartesia's `chunk` events (base64 audio),
then `done`. Errors come in Cartesia's shape, `{"title", "message", "error_code", "status_code"}`.
"""

from __future__ import annotations

import logging

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ....logs import log_event
from ....media import EncodedFrame
from ....protocol import Alignment, Done, Error, ErrorCode
from ....request_id import new_request_id, request_id_of
from ....security.guard import client_of
from ....server_state import ServerState
from ....session import Output, Stopped
from ....text import split_segments
from ...http_common import HttpError, options_for, read_body, require_a_provider
from ...http_stream import StreamedResponse, open_stream, stream_response
from .protocol import ContextRenderer, error_message, stream_error
from .request import Generation, Refused, generation_config

logger = logging.getLogger(__name__)

BYTES_CONTAINERS = ("raw", "wav", "mp3")
SSE_CONTAINERS = ("raw",)
MAX_TRANSCRIPT_CHARS = 5000


async def tts_bytes(request: Request) -> Response | StreamedResponse:
    opened = await _open(request, BYTES_CONTAINERS, "cartesia_bytes")
    if isinstance(opened, Response):
        return opened
    state, stream, options, _ = opened

    def audio(output: Output) -> bytes | None:
        if type(output) is EncodedFrame:
            return output.data
        if type(output) is Error:
            # The status line is long gone: the audio ends short, and the log says why.
            log_event(logger, "cartesia.segment_failed", level=logging.WARNING, stream=stream.id, code=output.code)
        return None

    return stream_response(state, stream, options.format.mime, audio)


async def tts_sse(request: Request) -> Response | StreamedResponse:
    opened = await _open(request, SSE_CONTAINERS, "cartesia_sse")
    if isinstance(opened, Response):
        return opened
    state, stream, _, body = opened
    renderer = ContextRenderer(body.context_id or stream.id)

    def event(output: Output) -> bytes | None:
        if type(output) is Stopped:
            messages = [error_message(stream_error(output.reason), renderer.context_id)]
        else:
            messages = renderer.render(output)
        name = (
            "done" if type(output) is Done
            else "error" if type(output) in (Stopped, Error)
            else "timestamps" if type(output) is Alignment
            else "chunk"
        )  # fmt: skip
        return "".join(f"event: {name}\ndata: {m}\n\n" for m in messages).encode() or None

    return stream_response(state, stream, "text/event-stream; charset=utf-8", event)


async def _open(request: Request, containers: tuple[str, ...], transport: str):  # type: ignore[no-untyped-def]
    state: ServerState = request.app.state.server
    request_id = request_id_of(request) or new_request_id()
    try:
        body = await read_body(request, Generation, state.settings.max_message_bytes)
        if body.transcript is None or body.model_id is None:
            raise Refused(400, "invalid_request", "model_id and transcript are required")
        if len(body.transcript) > MAX_TRANSCRIPT_CHARS:
            raise Refused(400, "invalid_request", f"transcript over {MAX_TRANSCRIPT_CHARS} characters")
        config = generation_config(body, state.settings, state.providers, containers=containers)
        # An HTTP client takes the audio as fast as it comes.
        options = options_for(state, msgspec.structs.replace(config, max_lead_ms=0))
        if not split_segments(body.transcript, language=options.language):
            raise HttpError(400, ErrorCode.EMPTY_INPUT, "transcript has nothing to speak (only whitespace)")
        require_a_provider(state, options)
        stream = await open_stream(state, options, transport, client_of(request), text=body.transcript)
    except Refused as exc:
        return JSONResponse(exc.body(), status_code=exc.status, headers={"x-request-id": request_id})
    except HttpError as exc:
        refused = Refused(exc.status, exc.code, exc.message)
        headers = {"x-request-id": request_id}
        if exc.retry_after_s is not None:
            headers["Retry-After"] = str(max(1, round(exc.retry_after_s + 0.5)))
        return JSONResponse(refused.body(), status_code=exc.status, headers=headers)
    log_event(logger, "cartesia.open", stream=stream.id, request=request_id, transport=transport, format=options.format.name)
    return state, stream, options, body
