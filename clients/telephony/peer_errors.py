"""The emulated Twilio peer's expected failures as one line each, like `say`'s (no traceback)."""

from __future__ import annotations

import json

import httpx
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

HANDSHAKE_HINTS = {
    403: "the bridge checks Twilio's signature: give --auth-token (and --signed-url behind a proxy)",
}
BOT_API_HINTS = {
    401: "the bridge's bot API needs --bot-token",
    404: "the bridge does not know this call",
}


def _error_message(body: bytes) -> str:
    try:
        return str(json.loads(body)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return ""


def _joined(*parts: str) -> str:
    return "; ".join(part for part in parts if part)


def describe_failure(error: BaseException, bridge_url: str) -> str | None:
    """A one-line message for a failure a user can cause or fix; None for a bug (keep its traceback)."""
    if isinstance(error, InvalidStatus):
        status = error.response.status_code
        detail = _error_message(error.response.body or b"")
        return _joined(f"{bridge_url} refused the call with HTTP {status}", detail, HANDSHAKE_HINTS.get(status, ""))
    if isinstance(error, httpx.HTTPStatusError):
        request, status = error.request, error.response.status_code
        return _joined(
            f"the bot API answered {request.method} {request.url.path} with HTTP {status}",
            _error_message(error.response.content),
            BOT_API_HINTS.get(status, ""),
        )
    if isinstance(error, httpx.TransportError):
        return f"cannot reach the bridge's bot API: {error or type(error).__name__}"
    if isinstance(error, ConnectionRefusedError):
        return f"cannot connect to {bridge_url}: connection refused (is the bridge running?)"
    if isinstance(error, OSError | TimeoutError | InvalidHandshake):
        return f"cannot connect to {bridge_url}: {error or type(error).__name__}"
    if isinstance(error, ConnectionClosed):
        return f"the bridge closed the call: {error}"
    return None
