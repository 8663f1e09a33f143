"""Who may open a call on `/twilio`: only Twilio, proven by the upgrade's `X-Twilio-Signature`.

The signature covers the URL as Twilio requested it, which the bridge must rebuild: from
`--public-url` (the base Twilio was given, e.g. `wss://voice.example.com`, since behind a TLS proxy
the bridge sees another scheme and host) or else from the request's own scheme and Host header.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.websockets import WebSocket

from .twilio_signature import SIGNATURE_HEADER, is_valid_signature

TWILIO_PATH = "/twilio"
PUBLIC_URL_SCHEMES = ("wss", "ws")


def public_url_problem(public_url: str) -> str | None:
    """Why `public_url` cannot be the base Twilio connects to, or None."""
    parts = urlsplit(public_url)
    if parts.scheme not in PUBLIC_URL_SCHEMES or not parts.netloc:
        return f"{public_url!r} is not a wss:// URL (e.g. wss://voice.example.com)"
    if parts.query or parts.fragment or "?" in public_url or "#" in public_url:
        return f"{public_url!r} has a query or fragment: give the base URL only (the bridge adds {TWILIO_PATH})"
    return None


def requested_url(websocket: WebSocket, public_url: str | None) -> str:
    """The URL this handshake was made to, as its sender would have signed it."""
    query = websocket.scope.get("query_string", b"").decode("latin-1")
    suffix = f"?{query}" if query else ""
    if public_url is not None:
        return public_url.rstrip("/") + TWILIO_PATH + suffix
    raw_path = websocket.scope.get("raw_path")  # as sent, still percent-encoded
    path = raw_path.decode("latin-1") if raw_path else websocket.scope["path"]
    host = websocket.headers.get("host", "")
    return f"{websocket.scope.get('scheme', 'ws')}://{host}{path}{suffix}"


def signature_refusal(websocket: WebSocket, auth_token: str, public_url: str | None) -> str | None:
    """Why this handshake is not Twilio's (for the log: never the signature itself), or None."""
    url = requested_url(websocket, public_url)
    signature = websocket.headers.get(SIGNATURE_HEADER)
    if is_valid_signature(auth_token, url, signature):
        return None
    what = "no" if not signature else "a wrong"
    # The query string stays out of the log: someone may put a secret there.
    shown = url.split("?", 1)[0] + (" (plus its query string)" if "?" in url else "")
    return f"{what} {SIGNATURE_HEADER} for {shown}"
