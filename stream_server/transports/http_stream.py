"""A streamed HTTP response, and a stream carried by one.

`StreamedResponse` is an ASGI response whose body an async producer writes, in one task group
per request: the producer, and a listener that reads the request (a text body still arriving,
then the disconnect, which cancels the scope and with it the producer). Starlette's
StreamingResponse is not used: it reads the request itself to notice a disconnect (which would
swallow a body still arriving) and cancels its body iterator in a way that can skip clean-up.
"""

from __future__ import annotations

import codecs
import logging
from collections.abc import Awaitable, Callable, Mapping

import anyio
from starlette.types import Receive, Scope, Send

from ..logs import log_event
from ..media import EncodedFrame
from ..protocol import Error, ProtocolError
from ..security import Client
from ..server_state import ServerState
from ..session import ClientGone, Output, Stream, StreamOptions
from .http_common import http_error

logger = logging.getLogger(__name__)

Write = Callable[[bytes], Awaitable[None]]
BodyChunk = Callable[[bytes, bool], Awaitable[None]]
"""Takes each chunk of the request body as it arrives, and whether it is the last."""


class StreamedResponse:
    def __init__(
        self,
        media_type: str,
        produce: Callable[[Write], Awaitable[None]],
        *,
        headers: Mapping[str, str] | None = None,
        body: BodyChunk | None = None,
        closed: Callable[[], None] | None = None,
    ) -> None:
        """`closed` runs when the response is over, however it ended."""
        self._headers = [(b"content-type", media_type.encode()), (b"cache-control", b"no-cache")]
        self._headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        self._produce = produce
        self._body = body
        self._closed = closed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def write(data: bytes) -> None:
            await send({"type": "http.response.body", "body": data, "more_body": True})

        try:
            await send({"type": "http.response.start", "status": 200, "headers": self._headers})
            async with anyio.create_task_group() as request:
                request.start_soon(self._listen, receive, request.cancel_scope)
                try:
                    await self._produce(write)
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                except OSError:
                    pass  # the client went away mid-write
                request.cancel_scope.cancel()
        finally:
            if self._closed is not None:
                self._closed()

    async def _listen(self, receive: Receive, request: anyio.CancelScope) -> None:
        body_open = self._body is not None
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                request.cancel()  # the client went away: stop producing now
                return
            if body_open and self._body is not None:
                body_open = message.get("more_body", False)
                await self._body(message.get("body", b""), not body_open)


def raw_audio(stream: Stream, failed_event: str) -> Callable[[Output], bytes | None]:
    """A renderer for a body of bare audio: each frame's bytes. A segment that failed cannot be
    said in the body (the status line is long gone): the audio ends short, and the log says why."""

    def render(output: Output) -> bytes | None:
        if type(output) is EncodedFrame:
            return output.data
        if type(output) is Error:
            log_event(logger, failed_event, level=logging.WARNING, stream=stream.id, code=output.code)
        return None

    return render


def stream_response(
    state: ServerState,
    stream: Stream,
    media_type: str,
    render: Callable[[Output], bytes | None],
    *,
    text_body: bool = False,
    headers: Mapping[str, str] | None = None,
) -> StreamedResponse:
    """The stream's outputs, rendered, as the response body; the stream is closed with it.

    `text_body`: the request's body is the stream's text, pushed as it arrives (UTF-8 split
    across chunks is put back together); a refusal (a limit) is said in the stream, which ends
    there."""

    async def produce(write: Write) -> None:
        async def send(output: Output) -> None:
            if data := render(output):
                try:
                    await write(data)
                except OSError as exc:
                    raise ClientGone from exc

        await stream.run(send)

    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    async def feed(chunk: bytes, last: bool) -> None:
        if not stream.core.open or stream.core.input_ended:
            return
        try:
            if text := decoder.decode(chunk, final=last):
                await stream.text(text)
        except ProtocolError as exc:
            log_event(logger, "stream.body_refused", level=logging.WARNING, stream=stream.id, code=exc.code)
            stream.reply(Error(code=exc.code, message=exc.message))
            last = True
        if last:
            stream.end()

    return StreamedResponse(
        media_type,
        produce,
        headers=headers,
        body=feed if text_body else None,
        closed=lambda: state.close_stream(stream),
    )


async def open_stream(
    state: ServerState,
    options: StreamOptions,
    transport: str,
    client: Client,
    *,
    text: str | None = None,
    charged_before: bool = False,
) -> Stream:
    """A stream for one HTTP response. `text`: the whole input, pushed and ended here, so that a
    refusal (a rate limit) is an HTTP error before the response starts. `charged_before`: see
    `ServerState.open_stream`. Raises `HttpError`."""
    try:
        stream = await state.open_stream(options, transport, client=client, charged_before=charged_before)
    except ProtocolError as exc:
        raise http_error(exc) from None
    if text is not None:
        try:
            await stream.text(text)
        except ProtocolError as exc:
            # Nothing was sent yet: release the stream and refuse the request.
            state.close_stream(stream)
            raise http_error(exc) from None
        stream.end()
    return stream
