"""Slow and silent sockets: request-head and write deadlines, every socket counted toward
`--max-connections`, and a server out of file descriptors that refuses instead of spinning.

Real servers on loopback, clients on real sockets: a raw TCP client where the point is a
malformed pace (a head sent a byte at a time, a response never read), the websockets and httpx
clients elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from stream_server.connections.guarded import BUSY_RESPONSE
from stream_server.connections.table import ConnectionTable
from stream_server.providers.tone import ToneProvider

from .conftest import RunningServer, run_server, tone_settings
from .helpers import receive, receive_all, send, wait_for
from .processes import server_process

# A long text: minutes of audio, more than every buffer between the server and a client holds.
LONG_TEXT = " ".join(f"Sentence number {n} has a few more words in it." for n in range(300))
TINY_BUFFER = 4096
TCP_ESTABLISHED = 1  # tcp_info's first byte: the connection's state


def held_by_server(sock: socket.socket) -> bool:
    """The server has not closed this connection (neither a FIN nor a reset came): asked of the
    kernel, without reading."""
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] == TCP_ESTABLISHED


def table(server: RunningServer) -> ConnectionTable:
    return server.state.access.connections


@asynccontextmanager
async def raw(
    port: int, receive_buffer: int | None = None
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """A plain TCP connection; with `receive_buffer`, a small one (set before connecting, so the
    window is small from the start)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        yield reader, writer
    finally:
        writer.close()


async def closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sent until it closed the connection (a reset counts as closed)."""
    received = bytearray()
    try:
        while chunk := await reader.read(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return bytes(received)


# -- the request-head deadline ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "head",
    [
        b"",  # connected, silent
        b"GET /v1/voices HTTP/1.1\r\nHost: 127.0.0.1\r\n",
        b"GET /v1/tts/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
    ],
    ids=["silent", "http", "websocket-handshake"],
)
async def test_a_request_head_that_does_not_arrive_in_time_is_closed(tone_provider: ToneProvider, head: bytes) -> None:
    async with run_server(tone_settings(header_timeout_s=0.5), {"tone": tone_provider}) as server:
        async with raw(server.port) as (reader, writer):
            writer.write(head)

            async def trickle() -> None:
                # A header byte every 0.1 s: progress on the socket, never a whole head.
                for _ in range(200):
                    writer.write(b"X")
                    await asyncio.sleep(0.1)

            trickling = asyncio.create_task(trickle())
            try:
                answer = await asyncio.wait_for(closed_by_server(reader), 15)
            finally:
                trickling.cancel()
            # Closed while it still trickled (the trickle lasts 20 s), having answered nothing.
            assert answer == b""
        await wait_for(lambda: len(table(server)) == 0)
        async with httpx.AsyncClient(base_url=server.http_url) as http:  # others are served as ever
            assert (await http.get("/v1/voices")).status_code == 200


async def test_each_request_on_a_kept_alive_connection_has_the_deadline(tone_provider: ToneProvider) -> None:
    async with run_server(tone_settings(header_timeout_s=0.5), {"tone": tone_provider}) as server:
        async with raw(server.port) as (reader, writer):
            writer.write(b"GET /v1/voices HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            status = await reader.readline()
            assert b" 200 " in status
            writer.write(b"GET /v1/voices HTTP/1.1\r\nHost: ")  # the second head never ends

            async def trickle() -> None:
                for _ in range(200):
                    writer.write(b"x")
                    await asyncio.sleep(0.1)

            trickling = asyncio.create_task(trickle())
            try:
                rest = await asyncio.wait_for(closed_by_server(reader), 15)
            finally:
                trickling.cancel()
            assert rest.count(b"HTTP/1.1") == 0  # only the first answer (its body) came


async def test_a_request_body_may_arrive_slowly(tone_provider: ToneProvider) -> None:
    """The deadline is the head's: a text/plain body streamed over longer than it is not cut."""
    async with run_server(tone_settings(header_timeout_s=0.3), {"tone": tone_provider}) as server:

        async def text() -> AsyncIterator[bytes]:
            for word in ["Words ", "that ", "arrive ", "over ", "time. ", "Like ", "tokens."]:
                yield word.encode()
                await asyncio.sleep(0.15)  # an LLM's pace: the body takes ~1 s, past the deadline

        async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as http:
            answer = await http.post("/v1/tts/stream", content=text(), headers={"content-type": "text/plain"})
        assert answer.status_code == 200
        assert "event: done" in answer.text and answer.text.count("event: segment_end") == 2


async def test_a_request_body_that_stops_before_the_answer_is_cut(tone_provider: ToneProvider) -> None:
    """A JSON body is read whole before the server answers: one that stops arriving holds the
    socket for nothing, and is given the head's deadline since its last byte."""
    async with run_server(tone_settings(header_timeout_s=0.3), {"tone": tone_provider}) as server:
        async with raw(server.port) as (reader, writer):
            writer.write(
                b"POST /v1/tts/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
                b"content-length: 100\r\n\r\n{\"format\": "
            )
            rest = await asyncio.wait_for(closed_by_server(reader), 15)
        assert b"HTTP/1.1 201" not in rest
        await wait_for(lambda: len(server.state.access.connections) == 0)


# -- every socket counts -------------------------------------------------------------------------------


async def test_sockets_still_sending_their_heads_count_toward_max_connections(tone_provider: ToneProvider) -> None:
    settings = tone_settings(max_connections=2, header_timeout_s=60)
    async with run_server(settings, {"tone": tone_provider}) as server, AsyncExitStack() as slow:
        for _ in range(2):
            _, writer = await slow.enter_async_context(raw(server.port))
            writer.write(b"GET /v1/voices HTTP/1.1\r\n")  # and no more
        await wait_for(lambda: len(table(server)) == 2)
        async with httpx.AsyncClient(base_url=server.http_url) as http:
            busy = await http.get("/v1/voices")
            assert busy.status_code == 503 and busy.json()["error"]["code"] == "server_busy"
            assert (await http.get("/healthz")).status_code == 200  # probes get through
            async with connect(server.ws_url) as ws:
                assert (await receive(ws))["code"] == "server_busy"
                await receive_all(ws)
            assert ws.close_code == 1013
            await slow.aclose()  # the slow ones go: their places are free again
            await wait_for(lambda: len(table(server)) <= 1)  # httpx's own kept-alive socket
            assert (await http.get("/v1/voices")).status_code == 200


async def test_past_the_headroom_a_new_socket_gets_a_bare_503_unread(tone_provider: ToneProvider) -> None:
    settings = tone_settings(max_connections=1, header_timeout_s=60)
    async with run_server(settings, {"tone": tone_provider}) as server, AsyncExitStack() as held:
        hard_cap = table(server).limits.hard_cap
        for _ in range(hard_cap):
            await held.enter_async_context(raw(server.port))
        await wait_for(lambda: len(table(server)) == hard_cap)
        async with raw(server.port) as (reader, writer):
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = await asyncio.wait_for(closed_by_server(reader), 15)
        assert answer == BUSY_RESPONSE
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "server_busy"


# -- the write deadline ------------------------------------------------------------------------------


async def test_a_websocket_client_that_stops_reading_is_closed(tone_provider: ToneProvider) -> None:
    async with run_server(tone_settings(write_timeout_s=0.5), {"tone": tone_provider}) as server:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, TINY_BUFFER)
        sock.connect(("127.0.0.1", server.port))
        async with connect(f"{server.ws_url}?format=f32&sample_rate=48000", sock=sock, ping_interval=None) as ws:
            assert (await receive(ws))["type"] == "ready"
            await send(ws, type="text", text=LONG_TEXT)
            await send(ws, type="end")
            ws.transport.pause_reading()  # takes nothing more
            await wait_for(lambda: not server.state.streams and len(table(server)) == 0)
            await wait_for(lambda: not held_by_server(sock))  # reset: the kernel's buffer is dropped too
            ws.transport.resume_reading()
            with pytest.raises(ConnectionClosed):
                while True:
                    await ws.recv()
        # Cut off: no close frame came (one would have waited behind the unread audio).
        assert ws.close_code == 1006


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/tts/stream", {"text": LONG_TEXT, "format": "f32", "sample_rate": 48000}),
        ("/v1/audio/speech", {"model": "tts-1", "input": LONG_TEXT[:4000], "voice": "beep", "response_format": "pcm"}),
    ],
    ids=["sse", "speech"],
)
async def test_an_http_client_that_never_reads_is_closed(
    tone_provider: ToneProvider, path: str, body: dict[str, object]
) -> None:
    async with run_server(tone_settings(write_timeout_s=0.5), {"tone": tone_provider}) as server:
        payload = json.dumps(body).encode()
        async with raw(server.port, receive_buffer=TINY_BUFFER) as (reader, writer):
            writer.write(
                b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                % (path.encode(), len(payload), payload)
            )
            await wait_for(lambda: len(server.state.streams) == 1)
            # Never read: the server's buffers fill, nothing leaves, and the deadline closes it.
            await wait_for(lambda: not server.state.streams and len(table(server)) == 0)
            # Reset, not closed behind megabytes still queued for it in the kernel.
            await wait_for(lambda: not held_by_server(writer.get_extra_info("socket")))
            with pytest.raises(ConnectionResetError):
                await asyncio.wait_for(reader.read(), 15)


async def test_a_slow_but_steady_reader_is_not_closed(tone_provider: ToneProvider) -> None:
    """Progress restarts the write clock: a client that keeps taking a little is served in full,
    though the server always has more for it than it takes, for much longer than the deadline
    (about 100 s of f32 audio, 19 MB, taken 32 kB at a time: several seconds). The deadline is
    2 s, not less: client and server share this event loop, and on a loaded machine a turn of it
    can take a good part of a second."""
    async with run_server(tone_settings(write_timeout_s=2.0), {"tone": tone_provider}) as server:
        payload = json.dumps({"text": LONG_TEXT[:1500], "format": "f32", "sample_rate": 48000}).encode()
        async with raw(server.port, receive_buffer=TINY_BUFFER) as (reader, writer):
            writer.write(
                b"POST /v1/tts/stream HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
                b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(payload), payload)
            )
            received = bytearray()
            while chunk := await asyncio.wait_for(reader.read(32768), 15):
                received += chunk
                await asyncio.sleep(0.01)  # a slow reader's pace
        assert b"event: done" in received


# -- out of file descriptors ---------------------------------------------------------------------------


async def test_out_of_descriptors_the_server_refuses_new_clients_and_logs_once() -> None:
    """A server process limited to 64 descriptors, and 100 sockets that never finish a head: the
    ones it cannot take are refused (a 503, or closed), the log says so in one line, and once
    the sockets go, it serves again."""
    async with server_process("--header-timeout-s", "60", max_files=64) as server, AsyncExitStack() as held:
        writers = []
        for _ in range(100):
            _, writer = await held.enter_async_context(raw(server.port))
            writer.write(b"GET /v1/voices HTTP/1.1\r\n")
            writers.append(writer)
        async with raw(server.port) as (reader, writer):  # bob, while none are left
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = await asyncio.wait_for(closed_by_server(reader), 15)
        assert answer in (b"", BUSY_RESPONSE)  # refused: not left waiting
        await held.aclose()
        async with httpx.AsyncClient(base_url=server.http_url, timeout=15) as http:
            assert (await http.get("/healthz")).status_code == 200
        events = [entry["event"] for entry in server.log()]
        assert 1 <= events.count("server.out_of_descriptors") <= 2  # one line, with a count
        assert not [line for line in server.lines if "Traceback" in line or "out of system resource" in line]
