"""Keys, browser tokens, origins, per-key and global limits, and timeouts, against a live server."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus
from websockets.http11 import Response

from stream_server.logs import JsonFormatter
from stream_server.protocol import ProtocolError
from stream_server.providers.tone import ToneProvider
from stream_server.security import TokenIssuer

from .conftest import RunningServer, run_server, tone_settings
from .helpers import receive, receive_all, receive_until, send
from .processes import server_process

KEY, OTHER_KEY = "sk-test-alpha-0123456789", "sk-test-beta-9876543210"
BEARER = {"Authorization": f"Bearer {KEY}"}


@asynccontextmanager
async def keyed_server(tone_provider: ToneProvider, **overrides: Any) -> AsyncIterator[RunningServer]:
    settings = tone_settings(api_keys=(KEY, OTHER_KEY), **overrides)
    async with run_server(settings, {"tone": tone_provider}) as server:
        yield server


async def refused_handshake(url: str, **kwargs: Any) -> Response:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, **kwargs):
            pass
    return refused.value.response


async def handshake_status(url: str, **kwargs: Any) -> int:
    return (await refused_handshake(url, **kwargs)).status_code


async def refused_body(url: str, **kwargs: Any) -> dict[str, Any]:
    return json.loads((await refused_handshake(url, **kwargs)).body)


async def speak(ws: ClientConnection, text: str) -> dict[str, Any]:
    """Send `text`, end, and return the `done` (the stream must finish normally)."""
    await send(ws, type="text", text=text)
    await send(ws, type="end")
    transcript = await receive_all(ws)
    assert ws.close_code == 1000, transcript.messages()
    done = transcript.messages("done")
    assert len(done) == 1 and done[0]["audio_ms"] > 0
    return done[0]


# -- authentication ------------------------------------------------------------------------------


async def test_http_needs_a_known_key_except_the_public_endpoints(tone_provider: ToneProvider) -> None:
    async with keyed_server(tone_provider) as server, httpx.AsyncClient(base_url=server.http_url) as http:
        body = {"text": "Hello there."}
        missing = await http.post("/v1/tts/stream", json=body)
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert missing.json()["error"]["code"] == "unauthorized"
        wrong = await http.post("/v1/tts/stream", json=body, headers={"Authorization": "Bearer sk-nope"})
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthorized"
        basic = await http.post("/v1/tts/stream", json=body, headers={"Authorization": f"Basic {KEY}"})
        assert basic.status_code == 401
        good = await http.post("/v1/tts/stream", json=body, headers=BEARER)
        assert good.status_code == 200 and "event: done" in good.text
        speech = {"model": "tone", "input": "Hi.", "voice": "alloy", "response_format": "pcm"}
        assert (await http.post("/v1/audio/speech", json=speech)).status_code == 401
        assert (await http.post("/v1/tts/sessions", json={})).status_code == 401
        assert (await http.post("/v1/tokens")).status_code == 401
        for public in ("/healthz", "/readyz", "/metrics", "/v1/", "/v1/voices", "/v1/formats", "/v1/models"):
            assert (await http.get(public)).status_code == 200, public


async def test_websocket_takes_a_bearer_header_and_refuses_without(tone_provider: ToneProvider) -> None:
    async with keyed_server(tone_provider) as server:
        assert await handshake_status(server.ws_url) == 401
        body = await refused_body(server.ws_url, additional_headers={"Authorization": "Bearer sk-wrong"})
        assert body["error"]["code"] == "unauthorized"
        async with connect(server.ws_url, additional_headers=BEARER) as ws:
            assert (await receive(ws))["type"] == "ready"
            await speak(ws, "Hello there.")


async def test_a_browser_token_opens_one_websocket_once(tone_provider: ToneProvider) -> None:
    async with keyed_server(tone_provider) as server, httpx.AsyncClient(base_url=server.http_url) as http:
        minted = await http.post("/v1/tokens", headers=BEARER)
        assert minted.status_code == 201 and minted.headers["cache-control"] == "no-store"
        grant = minted.json()
        assert set(grant) == {"token", "expires_in_s"} and 0 < grant["expires_in_s"] <= 300
        url = f"{server.ws_url}?token={grant['token']}&voice=low"
        async with connect(url) as ws:
            ready = await receive(ws)
            assert ready["type"] == "ready" and ready["voice"] == "low"  # token is not a stream option
            await speak(ws, "Hi.")
        assert await handshake_status(url) == 401  # single use
        assert await handshake_status(f"{server.ws_url}?token=forged.token") == 401


async def test_a_token_counts_against_its_keys_limits(tone_provider: ToneProvider) -> None:
    async with keyed_server(tone_provider, key_max_streams=1) as server, httpx.AsyncClient(
        base_url=server.http_url
    ) as http:
        token = (await http.post("/v1/tokens", headers=BEARER)).json()["token"]
        async with connect(server.ws_url, additional_headers=BEARER) as first:
            assert (await receive(first))["type"] == "ready"
            async with connect(f"{server.ws_url}?token={token}") as second:
                error = await receive(second)
                await receive_all(second)
                assert error["code"] == "too_many_streams" and second.close_code == 1013


async def test_an_open_server_on_loopback_needs_no_key_and_ignores_tokens(tone_server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=tone_server.http_url) as http:
        minted = await http.post("/v1/tokens")
        assert minted.status_code == 201 and minted.json()["token"] == "none"
    async with connect(f"{tone_server.ws_url}?token=none") as ws:
        assert (await receive(ws))["type"] == "ready"
        await speak(ws, "Open.")


async def test_each_refused_credential_says_what_was_wrong(tone_provider: ToneProvider) -> None:
    async with keyed_server(tone_provider) as server, httpx.AsyncClient(base_url=server.http_url) as http:

        async def http_message(path: str = "/v1/tokens", **headers: str) -> str:
            response = await http.post(path, headers=headers)
            assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"
            return response.json()["error"]["message"]

        async def ws_message(query: str = "") -> str:
            body = await refused_body(server.ws_url + query)
            assert body["error"]["code"] == "unauthorized"
            return body["error"]["message"]

        assert (await http_message()).startswith("no API key")
        assert await http_message(Authorization="Bearer sk-nope") == "unknown API key"
        assert "'Basic' is not taken" in await http_message(Authorization=f"Basic {KEY}")
        assert "opens a WebSocket only" in await http_message("/v1/tokens?token=abc")
        assert (await ws_message()).startswith("no credential")
        token = (await http.post("/v1/tokens", headers=BEARER)).json()["token"]
        async with connect(f"{server.ws_url}?token={token}") as ws:
            assert (await receive(ws))["type"] == "ready"
        assert "already used" in await ws_message(f"?token={token}")
        payload, _, signature = token.partition(".")
        assert "not issued by this server" in await ws_message(f"?token={payload}.{signature[::-1]}")
        assert "malformed" in await ws_message("?token=no-dot-at-all")


def test_an_expired_token_says_expired_even_once_forgotten() -> None:
    now = [1000.0]
    issuer = TokenIssuer(60, clock=lambda: now[0])
    token, used = issuer.mint("alice"), issuer.mint("alice")
    issuer.redeem(used)
    now[0] += 61
    issuer.mint("alice")  # forgets the expired ones
    for stale in (token, used):
        with pytest.raises(ProtocolError) as refused:
            issuer.redeem(stale)
        assert "expired" in refused.value.message


# -- origins -------------------------------------------------------------------------------------


async def test_browser_origins_must_be_the_servers_own_or_allowed(tone_provider: ToneProvider) -> None:
    settings = tone_settings(allowed_origins=("https://app.example",))
    async with run_server(settings, {"tone": tone_provider}) as server:
        own = f"http://127.0.0.1:{server.port}"
        assert await handshake_status(server.ws_url, origin="https://evil.example") == 403
        body = await refused_body(server.ws_url, origin="http://127.0.0.1:1")  # same host, other port
        assert body["error"]["code"] == "forbidden_origin"
        for origin in (own, "https://app.example"):
            async with connect(server.ws_url, origin=origin) as ws:
                assert (await receive(ws))["type"] == "ready"
        async with httpx.AsyncClient(base_url=server.http_url) as http:
            # A page elsewhere cannot even send a "simple" text/plain POST that CORS would let through.
            cross = await http.post(
                "/v1/tts/stream", content="Spend credits.", headers={"Origin": "https://evil.example", "Content-Type": "text/plain"}
            )
            assert cross.status_code == 403 and cross.json()["error"]["code"] == "forbidden_origin"
            allowed = await http.get("/v1/voices", headers={"Origin": "https://app.example"})
            assert allowed.status_code == 200
            assert allowed.headers["access-control-allow-origin"] == "https://app.example"


# -- limits --------------------------------------------------------------------------------------


async def test_streams_per_minute_answer_429_with_retry_after(tone_provider: ToneProvider) -> None:
    async with keyed_server(tone_provider, key_streams_per_minute=2) as server, httpx.AsyncClient(
        base_url=server.http_url
    ) as http:
        for _ in range(2):
            ok = await http.post("/v1/tts/stream", json={"text": "One."}, headers=BEARER)
            assert ok.status_code == 200
        limited = await http.post("/v1/tts/stream", json={"text": "Two."}, headers=BEARER)
        assert limited.status_code == 429 and limited.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(limited.headers["retry-after"]) <= 30  # one stream every 30 s
        async with connect(server.ws_url, additional_headers=BEARER) as ws:
            error = await receive(ws)
            await receive_all(ws)
        assert error["code"] == "rate_limited" and 0 < error["retry_after_ms"] <= 30_000
        assert ws.close_code == 1013
        # The other key has its own allowance.
        other = await http.post("/v1/tts/stream", json={"text": "Three."}, headers={"Authorization": f"Bearer {OTHER_KEY}"})
        assert other.status_code == 200


async def test_characters_per_minute_drop_only_the_text_over_the_limit(tone_provider: ToneProvider) -> None:
    async with keyed_server(tone_provider, key_chars_per_minute=60) as server:
        async with connect(server.ws_url, additional_headers=BEARER) as ws:
            assert (await receive(ws))["type"] == "ready"
            await send(ws, type="text", text="Forty characters of text fit in budget. ")
            await send(ws, type="text", text="These thirty characters do not.")
            await send(ws, type="end")
            transcript = await receive_all(ws)
        errors = transcript.messages("error")
        assert [e["code"] for e in errors] == ["rate_limited"] and errors[0]["retry_after_ms"] > 0
        # The accepted sentence was spoken in full and the stream ended normally.
        assert [s["text"] for s in transcript.messages("segment")] == ["Forty characters of text fit in budget."]
        assert transcript.messages("done")[0]["text_chars"] == 40 and ws.close_code == 1000
        async with httpx.AsyncClient(base_url=server.http_url) as http:
            over = await http.post("/v1/tts/stream", json={"text": "x" * 30}, headers=BEARER)
            assert over.status_code == 429 and "retry-after" in over.headers


async def test_a_full_server_refuses_connections_with_503_and_1013(tone_provider: ToneProvider) -> None:
    async with run_server(tone_settings(max_connections=1), {"tone": tone_provider}) as server:
        async with connect(server.ws_url) as holder:
            assert (await receive(holder))["type"] == "ready"
            async with connect(server.ws_url) as refused:
                error = await receive(refused)
                await receive_all(refused)
            assert error["code"] == "server_busy" and refused.close_code == 1013
            async with httpx.AsyncClient(base_url=server.http_url) as http:
                busy = await http.post("/v1/tts/stream", json={"text": "No room."})
                assert busy.status_code == 503 and busy.json()["error"]["code"] == "server_busy"
                assert (await http.get("/healthz")).status_code == 200  # probes get through
            await speak(holder, "The first one still works.")
        async with connect(server.ws_url) as ws:  # the place was freed
            assert (await receive(ws))["type"] == "ready"


# -- timeouts ------------------------------------------------------------------------------------


async def test_a_stream_waiting_for_text_is_closed_after_the_idle_timeout(tone_provider: ToneProvider) -> None:
    async with run_server(tone_settings(idle_timeout_s=0.5), {"tone": tone_provider}) as server:
        async with connect(server.ws_url) as ws:
            ready = await receive(ws)
            assert ready["idle_timeout_s"] == 0.5
            await send(ws, type="text", text="Spoken before the pause. And this waits")
            transcript = await receive_all(ws)
        assert [m["type"] for m in transcript.messages()][-2:] == ["segment_end", "error"]
        assert transcript.messages("error")[0]["code"] == "idle_timeout" and ws.close_code == 1000
        assert len(transcript.messages("segment")) == 1
        await wait_no_streams(server)


async def test_a_stream_busy_sending_audio_is_not_idle(tone_provider: ToneProvider) -> None:
    # Paced to real time, the audio takes several idle timeouts to deliver without new text.
    settings = tone_settings(idle_timeout_s=0.3, max_lead_ms=100)
    async with run_server(settings, {"tone": tone_provider}) as server:
        async with connect(server.ws_url) as ws:
            await receive(ws)
            await send(ws, type="text", text="One sentence here. Another sentence there. A third one now.")
            transcript = await receive_until(ws, "segment_end")
            transcript = await receive_until(ws, "segment_end", transcript)
            transcript = await receive_until(ws, "segment_end", transcript)
            assert not transcript.messages("error"), transcript.messages("error")
            await send(ws, type="end")
            await receive_all(ws)
        assert ws.close_code == 1000


async def test_a_stream_is_closed_after_the_longest_duration(tone_provider: ToneProvider) -> None:
    async with run_server(tone_settings(max_stream_s=0.5, idle_timeout_s=60), {"tone": tone_provider}) as server:
        async with connect(server.ws_url) as ws:
            assert (await receive(ws))["max_stream_s"] == 0.5
            transcript = await receive_all(ws)
        assert transcript.messages("error")[0]["code"] == "stream_too_long" and ws.close_code == 1008
        await wait_no_streams(server)


async def test_an_sse_session_belongs_to_the_key_that_made_it(tone_provider: ToneProvider) -> None:
    async with keyed_server(tone_provider) as server, httpx.AsyncClient(base_url=server.http_url) as http:
        made = (await http.post("/v1/tts/sessions", json={}, headers=BEARER)).json()
        other = {"Authorization": f"Bearer {OTHER_KEY}"}
        stolen = await http.post(made["text_url"], json={"text": "Mine now.", "end": True}, headers=other)
        assert stolen.status_code == 404
        assert (await http.delete(f"/v1/tts/sessions/{made['id']}", headers=other)).status_code == 404
        own = await http.post(made["text_url"], json={"text": "Mine.", "end": True}, headers=BEARER)
        assert own.status_code == 200
        # EventSource cannot send headers: the session's unguessable id is the reader's credential.
        events = await http.get(made["events_url"])
        assert events.status_code == 200 and "event: done" in events.text


async def wait_no_streams(server: RunningServer) -> None:
    from .helpers import wait_for

    await wait_for(lambda: not server.state.streams)


# -- secrets in logs ---------------------------------------------------------------------------


def test_browser_tokens_in_request_lines_are_masked_in_logs() -> None:
    record = logging.makeLogRecord(
        {"name": "uvicorn.error", "msg": '%s - "WebSocket %s" [accepted]', "args": ("127.0.0.1:5", "/v1/tts/stream?voice=low&token=abc.def")}
    )
    line = JsonFormatter().format(record)
    assert "abc.def" not in line and "token=***" in line and "voice=low" in line


def test_a_token_at_the_end_of_a_quoted_request_line_keeps_the_quote() -> None:
    record = logging.makeLogRecord({"name": "uvicorn.error", "msg": '"WebSocket /v1/tts/stream?token=abc" 401'})
    line = JsonFormatter().format(record)
    assert 'token=***\\" 401' in line and "abc" not in line


@pytest.mark.parametrize(
    "path",
    ["/static/../pyproject.toml", "/static/%2e%2e/pyproject.toml", "/static/..%2fpyproject.toml", "/static//etc/passwd"],
)
async def test_static_files_cannot_leave_their_folder(tone_server: RunningServer, path: str) -> None:
    async with httpx.AsyncClient(base_url=tone_server.http_url) as http:
        assert (await http.get("/static/index.html")).status_code == 200  # the folder is served
    # Sent byte for byte: an HTTP client library would normalise the dots away.
    reader, writer = await asyncio.open_connection("127.0.0.1", tone_server.port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    answer = await reader.read()
    writer.close()
    status = answer.split(b"\r\n", 1)[0]
    assert b" 404 " in status or b" 400 " in status, status
    assert b"[project]" not in answer and b"root:" not in answer


def test_a_bad_keys_file_stops_the_server_at_start_without_showing_the_key(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("alice sk-pasted-plain-key\n")
    revoked = tmp_path / "revoked"
    revoked.write_text("# alice sha256:" + "0" * 64 + "\n")  # every key commented out
    empty_on_public = subprocess.run(
        [sys.executable, "-m", "stream_server", "--providers", "tone", "--provider", "tone", "--port", "0",
         "--host", "0.0.0.0", "--api-keys-file", str(revoked)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert empty_on_public.returncode == 2 and "holds no key" in empty_on_public.stderr
    for path in (keys, tmp_path / "missing"):
        done = subprocess.run(
            [sys.executable, "-m", "stream_server", "--providers", "tone", "--provider", "tone", "--port", "0",
             "--api-keys-file", str(path)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 2 and "--api-keys-file" in done.stderr and str(path) in done.stderr
        assert "sk-pasted-plain-key" not in done.stderr + done.stdout


async def test_keys_and_tokens_never_reach_the_log_or_the_client() -> None:
    """A real keyed server process at debug level, used with good, bad and token credentials."""
    wrong = "sk-wrong-guess-5555555555"
    async with server_process("--api-keys", KEY, "--log-level", "debug", "--shutdown-grace-s", "0") as server:
        async with httpx.AsyncClient(base_url=server.http_url) as http:
            token = (await http.post("/v1/tokens", headers=BEARER)).json()["token"]
            refused = await http.post("/v1/tts/stream", json={"text": "Hi."}, headers={"Authorization": f"Bearer {wrong}"})
            assert wrong not in refused.text and KEY not in refused.text
            spoken = await http.post("/v1/tts/stream", json={"text": "Hello there."}, headers=BEARER)
            assert KEY not in spoken.text
        async with connect(f"{server.ws_url}?token={token}") as ws:
            assert (await receive(ws))["type"] == "ready"
            await speak(ws, "Over a token.")
        body = await refused_body(f"{server.ws_url}?token={token}")  # used already
        assert token not in str(body)
        await refused_body(server.ws_url, additional_headers={"Authorization": f"Bearer {wrong}"})
        server.process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(server.process.wait(), 30)
    log = "".join(server.lines)
    assert "token=***" in log  # the request lines were logged, masked
    for secret in (KEY, wrong, token, token.split(".")[1]):
        assert secret not in log


async def test_sse_session_text_over_the_keys_characters_is_429_and_the_session_goes_on(
    tone_provider: ToneProvider,
) -> None:
    async with keyed_server(tone_provider, key_chars_per_minute=30) as server, httpx.AsyncClient(
        base_url=server.http_url, headers=BEARER
    ) as http:
        made = (await http.post("/v1/tts/sessions", json={})).json()
        assert (await http.post(made["text_url"], json={"text": "Twenty chars fit in."})).status_code == 200
        over = await http.post(made["text_url"], json={"text": "These twenty do not."})
        assert over.status_code == 429 and over.json()["error"]["code"] == "rate_limited"
        assert int(over.headers["retry-after"]) >= 1
        assert (await http.post(made["text_url"], json={"end": True})).status_code == 200
        events = await http.get(made["events_url"])
    assert "Twenty chars fit in." in events.text and "do not" not in events.text and "event: done" in events.text



async def test_a_server_without_keys_answers_only_to_loopback_host_names(tone_server: RunningServer) -> None:
    """DNS rebinding: evil.example resolving to 127.0.0.1 makes Origin and Host agree."""
    evil = f"evil.example:{tone_server.port}"
    async with httpx.AsyncClient(base_url=tone_server.http_url) as http:
        rebound = await http.post(
            "/v1/tts/stream", json={"text": "Hi."}, headers={"Host": evil, "Origin": f"http://{evil}"}
        )
        assert rebound.status_code == 403 and rebound.json()["error"]["code"] == "forbidden_origin"
        for host in (f"127.0.0.1:{tone_server.port}", f"localhost:{tone_server.port}"):
            assert (await http.get("/v1/voices", headers={"Host": host})).status_code == 200
    # The WebSocket handshake, byte for byte (a client library sets Host itself).
    reader, writer = await asyncio.open_connection("127.0.0.1", tone_server.port)
    writer.write(
        f"GET /v1/tts/stream HTTP/1.1\r\nHost: {evil}\r\nOrigin: http://{evil}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    await writer.drain()
    status = await reader.readline()
    writer.close()
    assert b" 403 " in status, status


async def test_a_stopped_stream_whose_client_reads_nothing_frees_its_slot(
    tone_provider: ToneProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stream_server.session import core as stream_core

    from .helpers import wait_for

    monkeypatch.setattr(stream_core, "ABANDON_AFTER_S", 0.2)
    async with run_server(tone_settings(max_stream_s=1), {"tone": tone_provider}) as server:
        # The client library stops reading after 2 messages; unpaced f32 audio fills the sockets.
        async with connect(f"{server.ws_url}?format=f32&sample_rate=48000", max_queue=2) as ws:
            await send(ws, type="text", text="word " * 3000 + ".")
            await send(ws, type="flush")
            await wait_for(lambda: any(s.backpressured for s in server.state.streams))
            # Past --max-stream-s its error and close cannot be delivered: the stream is dropped.
            await wait_for(lambda: not server.state.streams)
