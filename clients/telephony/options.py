"""The bridge's settings (command-line flags of `python -m clients.telephony`)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class BridgeOptions:
    server_url: str = "ws://127.0.0.1:8000/v1/tts/stream"
    """stream_server's WebSocket endpoint; query parameters (e.g. `?voice=...`) are kept."""
    # Secrets stay out of the dataclass's repr, so logging or printing options cannot leak them.
    api_key: str | None = field(default=None, repr=False)
    """Sent upstream as `Authorization: Bearer` when the server has API keys. Never logged."""
    bot_token: str | None = field(default=None, repr=False)
    """When set, the bot API requires `Authorization: Bearer <bot_token>`. Never logged."""
    twilio_auth_token: str | None = field(default=None, repr=False)
    """When set, `/twilio` accepts only handshakes signed by Twilio with it (`X-Twilio-Signature`). Never logged."""
    public_url: str | None = None
    """The bridge's public base URL as Twilio reaches it (`wss://host[/prefix]`), what Twilio signs:
    behind a TLS proxy the bridge cannot see it. None: the request's own scheme and Host header."""
    lead_ms: float = 200.0
    """How far ahead of Twilio's playback audio is sent: what a `clear` throws away at most."""
    queue_frames: int = 100
    """Frames (20 ms each) buffered between the server and the pacer; past it the server is not read."""
    max_calls: int = 100
    start_timeout_s: float = 10.0
    """How long a new Twilio socket may take to send `start`."""
    cancel_timeout_s: float = 5.0
    """How long a barge-in waits for the server's `cancelled`."""
