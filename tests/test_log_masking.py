"""Credentials in request lines are masked in the log by what they look like, not by one spelling."""

from __future__ import annotations

import asyncio
import logging
import signal

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from stream_server.logs import JsonFormatter
from stream_server.security.keys import looks_like_key, new_key
from stream_server.security.tokens import TokenIssuer, looks_like_token

from .helpers import receive
from .processes import server_process

KEY = "sk-test-alpha-0123456789"
BEARER = {"Authorization": f"Bearer {KEY}"}


def formatted(message: str) -> str:
    return JsonFormatter().format(logging.makeLogRecord({"name": "uvicorn.access", "msg": message}))


@pytest.mark.parametrize(
    "query",
    [
        "token={token}",
        "%74oken={token}",  # the name percent-encoded
        "TOKEN={token}",
        "voice=low;token={token}",  # `;` as the separator
        "voice=low&Token={token}&format=opus",
        "api_key={key}",  # not a parameter of ours: masked by the value's shape
        "anything={key}",
        "{key}",  # a bare value
        "x={token_encoded}",  # the value percent-encoded
    ],
)
def test_a_credential_is_masked_under_any_name_or_spelling(query: str) -> None:
    token = TokenIssuer(60).mint("alice")
    key = new_key()
    token_encoded = "".join(f"%{ord(c):02X}" for c in token)
    filled = query.format(token=token, key=key, token_encoded=token_encoded)
    line = formatted(f'127.0.0.1:5 - "GET /v1/voices?{filled} HTTP/1.1" 200')
    for secret in (token, token.split(".")[1], key, token_encoded):
        assert secret not in line
    assert "***" in line and line.endswith('HTTP/1.1\\" 200"}')


def test_ordinary_parameters_stay_readable() -> None:
    line = formatted('"GET /v1/tts/stream?voice=low&format=opus&sample_rate=24000&speed=1.2 HTTP/1.1" 200')
    assert "voice=low&format=opus&sample_rate=24000&speed=1.2 HTTP" in line


def test_a_short_value_under_a_credential_name_is_masked_too() -> None:
    assert "token=***&voice=low" in formatted("/v1/tts/stream?token=abc&voice=low")
    assert "abc" not in formatted("/v1/tts/stream?api_key=abc")
    # Other vendors' key names, and a header's value pasted into a query (a space in it).
    for name in ("xi-api-key", "xi_api_key", "x-api-key", "authorization"):
        assert "sk_live" not in formatted(f"/v1/text-to-speech/v/stream?{name}=Bearer%20sk_live_abc")


def test_the_shapes_match_what_the_server_makes() -> None:
    assert looks_like_key(new_key()) and looks_like_key(KEY)
    assert looks_like_token(TokenIssuer(60).mint("alice"))
    assert not looks_like_key("low") and not looks_like_key("24000") and not looks_like_token("abc.def")


async def test_no_spelling_of_a_credential_reaches_a_real_servers_log() -> None:
    """A keyed server process at INFO (uvicorn's access log on): each spelling is requested over
    HTTP and WebSocket, and neither the key nor any token appears in its log."""
    async with server_process("--api-keys", KEY, "--log-level", "info", "--shutdown-grace-s", "0") as server:
        async with httpx.AsyncClient(base_url=server.http_url) as http:
            tokens = [(await http.post("/v1/tokens", headers=BEARER)).json()["token"] for _ in range(4)]
            for query in (f"api_key={KEY}", f"key={KEY}", f"TOKEN={tokens[0]}"):
                assert (await http.get(f"/v1/voices?{query}")).status_code == 200
            refused = await http.post(f"/v1/tts/stream?api_key={KEY}", json={"text": "Hi."}, headers=BEARER)
            assert refused.status_code == 400 and KEY not in refused.text  # not a parameter of ours
        # Only the literal `token` opens a WebSocket; the other spellings are refused (401), and logged.
        for query in (f"%74oken={tokens[1]}", f"TOKEN={tokens[2]}", f"voice=low;token={tokens[3]}"):
            with pytest.raises(InvalidStatus):
                async with connect(f"{server.ws_url}?{query}"):
                    pass
        async with connect(f"{server.ws_url}?token={tokens[0]}") as ws:  # TOKEN= above did not use it
            assert (await receive(ws))["type"] == "ready"
        server.process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(server.process.wait(), 30)
    log = "".join(server.lines)
    assert "api_key=***" in log and "%74oken=***" in log and ";token=***" in log  # the lines were logged
    for secret in (KEY, *tokens, *(token.split(".")[1] for token in tokens)):
        assert secret not in log
