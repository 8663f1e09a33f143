"""Reading a cloud provider's answer: Server-Sent Events framing and JSON bodies.

Whatever an upstream sends that cannot be read is its `provider_bad_response`, never a crash.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec

from .base import ProviderError
from .http import BAD_RESPONSE


@dataclass(frozen=True, slots=True)
class SseEvent:
    event: str
    data: str


class SseParser:
    """The text/event-stream framing: `event:` and `data:` lines, a blank line ends an event."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []

    def line(self, line: str) -> SseEvent | None:
        if not line:
            return self.end()
        if line.startswith(":"):
            return None  # a comment: keep-alive
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            self._event = value
        elif field == "data":
            self._data.append(value)
        return None  # id:, retry: and unknown fields do not matter here

    def end(self) -> SseEvent | None:
        """The event in progress, if any (at a blank line, or when the stream ends without one)."""
        event, data = self._event, self._data
        self._event, self._data = "", []
        if not data and not event:
            return None
        return SseEvent(event or "message", "\n".join(data))


def decode_json(data: bytes | str, name: str) -> Any:
    """An upstream's JSON (a body or one event); anything else is its bad response."""
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError:
        raise ProviderError(f"{name} sent an answer that is not JSON", code=BAD_RESPONSE) from None


def json_object(data: bytes | str, name: str) -> dict[str, Any]:
    """`decode_json`, where only a JSON object makes sense."""
    value = decode_json(data, name)
    if not isinstance(value, dict):
        raise ProviderError(f"{name} sent an answer that is not a JSON object", code=BAD_RESPONSE)
    return value


async def sse_events(response: httpx.Response) -> AsyncIterator[SseEvent]:
    """The events of a `text/event-stream` body as they complete (one left open at the end too)."""
    parser = SseParser()
    async for line in response.aiter_lines():
        if (event := parser.line(line)) is not None:
            yield event
    if (event := parser.end()) is not None:
        yield event
