"""An emulated Twilio media stream, for tests and for trying the bridge without a phone.

It connects like Twilio (`connected`, `start` with a streamSid/callSid and mediaFormat, the
caller's audio as `media` every 20 ms — μ-law silence here — and `stop` at the end), checks every
message it receives strictly (`peer_checks.py`, plus: audio may arrive at most `max_lead_ms`
ahead of playback), and plays like Twilio: a real-time clock consumes 160 bytes every 20 ms from
a buffer of what was sent and not yet played, a `mark` is echoed when playback reaches it, and
`clear` empties the buffer and echoes the marks still in it. What it played is kept (μ-law bytes).
Given an auth token, it signs its WebSocket upgrade as Twilio does (`X-Twilio-Signature` over the
URL it connects to, or over `signed_url` when a proxy stands between, as Twilio signs the URL in TwiML).

    python -m clients.telephony.twilio_peer --bridge ws://127.0.0.1:8080/twilio --say "Hello there."
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import secrets
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from urllib.parse import urlsplit, urlunsplit

import httpx
import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from ..program import program_name
from .peer_checks import OutboundChecker, TwilioViolation
from .peer_errors import describe_failure
from .twilio_protocol import (
    FRAME_BYTES,
    FRAME_MS,
    MULAW_ENCODING,
    MULAW_SILENCE,
    SAMPLE_RATE,
    Clear,
    Mark,
    MediaFormat,
    Start,
    StartInfo,
)
from .twilio_signature import SIGNATURE_HEADER, compute_signature

TELEPHONY_FORMAT = MediaFormat(encoding=MULAW_ENCODING, sample_rate=SAMPLE_RATE, channels=1)
FRAME_S = FRAME_MS / 1000
BYTES_PER_MS = SAMPLE_RATE // 1000
# Whatever a bridge sends, the emulated Twilio holds at most this much (a real one would run out of
# memory much later; a test peer fails loudly instead).
MAX_BUFFERED_FRAMES = 30_000
MAX_KEPT_VIOLATIONS = 100
_SILENT_FRAME = base64.b64encode(bytes([MULAW_SILENCE]) * FRAME_BYTES).decode("ascii")


@dataclass(frozen=True)
class EchoedMark:
    name: str
    played_bytes: int
    """Playback position when it was echoed."""
    at: float
    """time.monotonic() of the echo."""
    cleared: bool
    """Returned by a `clear`, not reached by playback."""
    stalled_ms: float
    """Time playback had waited for audio (an underrun: silence on the line) before this echo."""


@dataclass(frozen=True)
class ClearEvent:
    at: float
    played_bytes: int
    dropped_bytes: int
    returned_marks: tuple[str, ...]


@dataclass
class _Playback:
    queue: deque[bytes | str] = field(default_factory=deque)  # audio frames and mark names, in order
    queued_bytes: int = 0
    played: bytearray = field(default_factory=bytearray)
    started_at: float | None = None  # when the first audio started playing
    stalled_ticks: int = 0  # ticks since then that found no audio to play


def twilio_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


class TwilioPeer:
    def __init__(
        self, connection: ClientConnection, start: StartInfo, max_lead_ms: float | None, clock: Callable[[], float]
    ) -> None:
        self._connection = connection
        self.start = start
        self.max_lead_ms = max_lead_ms
        self._clock = clock
        self._checker = OutboundChecker(start.stream_sid)
        self._playback = _Playback()
        self._playback_lock = asyncio.Lock()
        self._origin = clock()
        self._ticks = 0
        self._send_lock = asyncio.Lock()
        self._sequence = 0
        self._changed = asyncio.Condition()
        self.received: list[Mark | Clear | bytes] = []
        """Marks, clears and audio frames in arrival order."""
        self.marks: list[EchoedMark] = []
        self.clears: list[ClearEvent] = []
        self.violations: list[str] = []
        self.max_buffered_ms = 0.0
        self.close_code: int | None = None
        self.close_reason = ""
        self.sent_media_frames = 0

    # --- what the tests read --------------------------------------------------------------------

    @property
    def call_sid(self) -> str:
        return self.start.call_sid

    @property
    def stream_sid(self) -> str:
        return self.start.stream_sid

    @property
    def played(self) -> bytes:
        return bytes(self._playback.played)

    @property
    def played_ms(self) -> float:
        return len(self._playback.played) / BYTES_PER_MS

    @property
    def stalled_ms(self) -> float:
        return self._playback.stalled_ticks * FRAME_MS

    @property
    def buffered_ms(self) -> float:
        return self._playback.queued_bytes / BYTES_PER_MS

    @property
    def playback_started_at(self) -> float | None:
        return self._playback.started_at

    def pending_marks(self) -> list[str]:
        return [item for item in self._playback.queue if isinstance(item, str)]

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait for a state of the emulated call (every change of it is notified)."""
        async with asyncio.timeout(timeout):
            async with self._changed:
                await self._changed.wait_for(predicate)

    # --- Twilio's side of the protocol ----------------------------------------------------------

    async def _send_event(self, event: dict[str, object]) -> None:
        async with self._send_lock:
            self._sequence += 1
            await self._connection.send(msgspec.json.encode({"sequenceNumber": str(self._sequence), **event}).decode())

    async def _announce(self) -> None:
        await self._send_event({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        await self._send_event(msgspec.to_builtins(Start(start=self.start, stream_sid=self.stream_sid)))

    async def stop(self) -> None:
        """Hang up as Twilio does: `stop`, then close the socket."""
        with suppress(ConnectionClosed):
            await self._send_event(
                {
                    "event": "stop",
                    "streamSid": self.stream_sid,
                    "stop": {"accountSid": self.start.account_sid, "callSid": self.call_sid},
                }
            )
        await self._connection.close()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _violation(self, text: str) -> None:
        if len(self.violations) < MAX_KEPT_VIOLATIONS:
            self.violations.append(text)

    async def _receive(self) -> None:
        try:
            async for data in self._connection:
                try:
                    message, audio = self._checker.check(data)
                except TwilioViolation as exc:
                    self._violation(str(exc))
                else:
                    await self._catch_up()
                    await self._take(message, audio)
                await self._notify()
        except ConnectionClosed:
            pass
        finally:
            self.close_code = self._connection.close_code
            self.close_reason = self._connection.close_reason or ""
            await self._notify()

    async def _take(self, message: object, audio: bytes) -> None:
        playback = self._playback
        if isinstance(message, Clear):
            self.received.append(message)
            dropped = playback.queued_bytes
            returned = tuple(item for item in playback.queue if isinstance(item, str))
            playback.queue.clear()
            playback.queued_bytes = 0
            now = self._clock()
            self.clears.append(ClearEvent(now, len(playback.played), dropped, returned))
            for name in returned:
                await self._echo(name, cleared=True)
        elif isinstance(message, Mark):
            self.received.append(message)
            playback.queue.append(message.mark.name)
        else:
            self.received.append(audio)
            if len(playback.queue) >= MAX_BUFFERED_FRAMES:
                self._violation(f"over {MAX_BUFFERED_FRAMES} frames buffered")
                return
            playback.queue.append(audio)
            playback.queued_bytes += len(audio)
            self.max_buffered_ms = max(self.max_buffered_ms, self.buffered_ms)
            if self.max_lead_ms is not None and self.buffered_ms > self.max_lead_ms:
                self._violation(f"{self.buffered_ms:.0f} ms buffered ahead of playback, over {self.max_lead_ms:.0f} ms")

    async def _echo(self, name: str, cleared: bool) -> None:
        self.marks.append(EchoedMark(name, len(self._playback.played), self._clock(), cleared, self.stalled_ms))
        with suppress(ConnectionClosed):
            await self._send_event({"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}})

    async def _play(self) -> None:
        """Consume one frame every 20 ms of real time; echo marks as playback reaches them."""
        while True:
            await asyncio.sleep(max(0.0, self._origin + (self._ticks + 1) * FRAME_S - self._clock()))
            await self._catch_up()
            await self._notify()

    async def _catch_up(self) -> None:
        """Bring playback to the real clock: a late wake-up plays the frames it missed, and a check of
        what is buffered never counts audio that should already have been played."""
        async with self._playback_lock:
            due = int((self._clock() - self._origin) / FRAME_S)
            while self._ticks < due:
                self._ticks += 1
                await self._tick()

    async def _tick(self) -> None:
        playback = self._playback
        # The frame started at the previous tick has finished: marks after it are reached.
        while playback.queue and isinstance(playback.queue[0], str):
            name = playback.queue.popleft()
            assert isinstance(name, str)
            await self._echo(name, cleared=False)
        if not playback.queue:
            if playback.started_at is not None:
                playback.stalled_ticks += 1
        else:
            frame = playback.queue.popleft()
            assert isinstance(frame, bytes)
            playback.queued_bytes -= len(frame)
            if playback.started_at is None:
                playback.started_at = self._origin + self._ticks * FRAME_S  # this tick's time, even if late
            playback.played += frame

    async def _speak_silence(self) -> None:
        """The caller's side: a `media` message of μ-law silence every 20 ms, as Twilio sends."""
        origin = self._clock()
        while True:
            self.sent_media_frames += 1
            n = self.sent_media_frames
            await self._send_event(
                {
                    "event": "media",
                    "streamSid": self.stream_sid,
                    "media": {
                        "track": "inbound",
                        "chunk": str(n),
                        "timestamp": str(n * FRAME_MS),
                        "payload": _SILENT_FRAME,
                    },
                }
            )
            await asyncio.sleep(max(0.0, origin + n * FRAME_S - self._clock()))


@asynccontextmanager
async def twilio_call(
    bridge_url: str,
    *,
    media_format: MediaFormat = TELEPHONY_FORMAT,
    max_lead_ms: float | None = None,
    call_sid: str | None = None,
    clock: Callable[[], float] = time.monotonic,
    auth_token: str | None = None,
    signed_url: str | None = None,
) -> AsyncIterator[TwilioPeer]:
    """A call's media stream connected to the bridge; hung up (`stop`) on exit.

    With `auth_token`, the upgrade carries Twilio's signature of `signed_url` (default: `bridge_url`,
    the URL connected to). A refused handshake raises websockets' `InvalidStatus`."""
    start = StartInfo(
        stream_sid=twilio_sid("MZ"),
        call_sid=call_sid or twilio_sid("CA"),
        media_format=media_format,
        account_sid=twilio_sid("AC"),
        tracks=["inbound"],
    )
    headers = {} if auth_token is None else {SIGNATURE_HEADER: compute_signature(auth_token, signed_url or bridge_url)}
    async with connect(bridge_url, max_queue=64, additional_headers=headers) as connection:
        peer = TwilioPeer(connection, start, max_lead_ms, clock)
        await peer._announce()
        tasks = [asyncio.create_task(coro) for coro in (peer._receive(), peer._play(), peer._speak_silence())]
        try:
            yield peer
        finally:
            if peer.close_code is None:
                await peer.stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def bot_api_url(bridge_url: str) -> str:
    """The bridge's HTTP base from its Twilio WebSocket URL (ws://host:port/twilio → http://host:port)."""
    parts = urlsplit(bridge_url)
    scheme = {"ws": "http", "wss": "https"}[parts.scheme]
    path = parts.path.removesuffix("/twilio")
    return urlunsplit((scheme, parts.netloc, path, "", ""))


async def _demo(args: argparse.Namespace) -> TwilioPeer:
    headers = {"Authorization": f"Bearer {args.bot_token}"} if args.bot_token else {}
    async with (
        httpx.AsyncClient(base_url=bot_api_url(args.bridge), headers=headers) as bot,
        twilio_call(
            args.bridge, max_lead_ms=args.max_lead_ms, auth_token=args.auth_token or None, signed_url=args.signed_url
        ) as peer,
    ):
        print(f"connected: callSid {peer.call_sid}, streamSid {peer.stream_sid}")
        if args.say:
            (await bot.post(f"/calls/{peer.call_sid}/text", json={"text": args.say, "flush": True})).raise_for_status()
            (await bot.post(f"/calls/{peer.call_sid}/end")).raise_for_status()
        else:
            print(
                f"send text with: curl -X POST {bot_api_url(args.bridge)}/calls/{peer.call_sid}/text "
                f"-H 'Content-Type: application/json' -d '{{\"text\": \"Hello there.\"}}'"
            )
        shown = 0
        deadline = time.monotonic() + args.seconds
        with suppress(TimeoutError):
            while peer.close_code is None:
                await peer.wait_until(partial(_news, peer, shown), deadline - time.monotonic())
                for mark in peer.marks[shown:]:
                    how = "returned by clear" if mark.cleared else "reached"
                    print(f"mark {mark.name} {how} at {mark.played_bytes / BYTES_PER_MS:.0f} ms of playback")
                shown = len(peer.marks)
                if args.say and _all_heard((await bot.get(f"/calls/{peer.call_sid}")).json()):
                    break
    print(
        f"played {peer.played_ms:.0f} ms, at most {peer.max_buffered_ms:.0f} ms buffered, {len(peer.clears)} clear(s)"
    )
    return peer


def _news(peer: TwilioPeer, marks_shown: int) -> bool:
    return len(peer.marks) > marks_shown or peer.close_code is not None


def _all_heard(state: dict[str, object]) -> bool:
    report = state.get("report")
    return bool(state.get("upstream_done")) and isinstance(report, dict) and not report.get("pending")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog=program_name("clients.telephony.twilio_peer"),
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--bridge", default="ws://127.0.0.1:8080/twilio", help="the bridge's Twilio WebSocket URL")
    parser.add_argument("--say", help="post this text to the bridge's bot API for the call, then end it")
    parser.add_argument("--bot-token", help="the bridge's --bot-token, if it has one")
    parser.add_argument(
        "--auth-token",
        default=os.environ.get("TWILIO_AUTH_TOKEN"),
        help="sign the upgrade with this Twilio auth token, like Twilio (default: $TWILIO_AUTH_TOKEN)",
    )
    parser.add_argument(
        "--signed-url",
        help="the URL to sign when it differs from --bridge (the bridge's --public-url + /twilio, behind a proxy)",
    )
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="hang up after this long (with --say: once all of it was heard)"
    )
    parser.add_argument("--max-lead-ms", type=float, default=400.0, help="fail if audio arrives further ahead")
    parser.add_argument("--out", help="write the played μ-law here")
    args = parser.parse_args(argv)
    if urlsplit(args.bridge).scheme not in ("ws", "wss"):
        parser.error(f"--bridge must be a ws:// or wss:// URL, not {args.bridge!r}")
    try:
        peer = asyncio.run(_demo(args))
    except Exception as exc:
        if (message := describe_failure(exc, args.bridge)) is None:
            raise
        print(f"twilio_peer: {message}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    if args.out:
        with open(args.out, "wb") as out:
            out.write(peer.played)
        print(f"wrote {args.out} (play: ffplay -f mulaw -ar 8000 -ac 1 {args.out})")
    for violation in peer.violations:
        print(f"VIOLATION: {violation}", file=sys.stderr)
    sys.exit(1 if peer.violations else 0)


if __name__ == "__main__":
    main()
