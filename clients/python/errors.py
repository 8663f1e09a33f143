"""What can go wrong, as one hierarchy: catch `StreamClientError` for all of it."""

from __future__ import annotations


class StreamClientError(Exception):
    """Base of every error this client raises."""


class InvalidServerUrl(StreamClientError, ValueError):
    """The URL is not a ws:// or wss:// URL."""


class ConnectFailed(StreamClientError):
    """The server could not be reached (refused, unreachable, timed out)."""


class HandshakeRejected(ConnectFailed):
    """The server answered the WebSocket handshake with an HTTP error status."""

    def __init__(self, status: int, detail: str = "") -> None:
        self.status = status
        self.detail = detail
        super().__init__(f"handshake rejected with HTTP {status}" + (f": {detail}" if detail else ""))


class Unauthorized(HandshakeRejected):
    """HTTP 401: no API key or token, or a wrong or expired one."""


class Forbidden(HandshakeRejected):
    """HTTP 403: the credentials are valid but not allowed here."""


class ServerError(StreamClientError):
    """The server sent an `error` message; `code` is stable (docs/protocol.md § Errors)."""

    def __init__(self, code: str, message: str, seq: int | None = None) -> None:
        self.code = code
        self.message = message
        self.seq = seq
        where = f" (segment {seq})" if seq is not None else ""
        super().__init__(f"{code}{where}: {message}")


class ConnectionLost(StreamClientError):
    """The connection closed before the stream finished with `done`."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"connection closed (code {code}{', ' + reason if reason else ''}) before the stream was done")


class ProtocolViolation(StreamClientError):
    """The server sent something this client cannot understand."""
