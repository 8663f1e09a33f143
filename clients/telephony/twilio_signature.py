"""Twilio's request signature (`X-Twilio-Signature`): computed by the emulated peer, checked by the bridge.

Twilio signs every request it makes, the WebSocket upgrade of a Media Stream included
(https://www.twilio.com/docs/usage/webhooks/webhooks-security and the SDKs' `RequestValidator`):

- The signed data is the full URL Twilio requested (scheme, host, path and query string, exactly
  as requested), then, for a form POST, each parameter sorted by name as name + value with no
  separator. A Media Stream's upgrade is a GET without a body: the URL alone.
- The signature is base64(HMAC-SHA1(key=auth token, data)).
- A Media Stream URL is signed with its own `wss://` scheme (what TwiML's `<Stream url>` says),
  not an `https://` form of it.
- Twilio's back end signs the URL sometimes with its port and sometimes without (the SDKs say so
  and accept either), so a signature is valid for the URL without any port or with its port made
  explicit (443 for https/wss, 80 for http/ws when the URL names none).

Why not the `twilio` package: this is a dozen lines of stdlib (hmac, hashlib, base64), while the
SDK brings its REST client and HTTP stack into a bridge that never calls Twilio's API; and its
`RequestValidator` assumes port 80 for any scheme but https, wrong for `wss://`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import urlsplit

SIGNATURE_HEADER = "X-Twilio-Signature"
DEFAULT_PORTS = {"https": 443, "wss": 443, "http": 80, "ws": 80}


def compute_signature(auth_token: str, url: str, params: Mapping[str, str] | None = None) -> str:
    """base64(HMAC-SHA1(auth_token, url + each POST parameter sorted by name, as name + value))."""
    fields = params or {}
    data = url + "".join(name + fields[name] for name in sorted(fields))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def signed_url_forms(url: str) -> tuple[str, str]:
    """The URL without any port and with its port explicit: the two forms Twilio may have signed.

    Only the authority changes; the rest is kept character for character (no re-encoding, an empty
    `?` kept), since the signature covers the URL exactly as requested."""
    parts = urlsplit(url)
    start = url.index("//") + 2
    rest = url[start + len(parts.netloc) :]
    userinfo, _, host = parts.netloc.rpartition("@")
    userinfo = userinfo + "@" if userinfo else ""
    bare_host = host if host.endswith("]") or ":" not in host else host.rsplit(":", 1)[0]
    port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower(), 80)
    head = url[:start] + userinfo + bare_host
    return head + rest, f"{head}:{port}{rest}"


def is_valid_signature(
    auth_token: str, url: str, signature: str | None, params: Mapping[str, str] | None = None
) -> bool:
    """Whether `signature` is Twilio's for this request, compared in constant time."""
    if not signature:
        return False
    try:
        forms = signed_url_forms(url)
    except ValueError:  # a malformed authority (a forged Host header): no URL Twilio would sign
        return False
    given = signature.encode()
    # Both forms are always computed and compared, so the time taken says nothing about which matched.
    matches = [hmac.compare_digest(given, compute_signature(auth_token, form, params).encode()) for form in forms]
    return any(matches)
