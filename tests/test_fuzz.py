"""Fuzzing one live server: random sequences of valid and invalid client messages, random bytes and
binary frames, invalid UTF-8, huge and deeply nested JSON, odd Unicode in text.

The server runs once for the module in a thread with its own event loop, and hypothesis drives it
with the synchronous `websockets` client (hypothesis does not run coroutines). One example is one
connection: a list of steps, optionally ended by an input that closes the connection. A small model
of the protocol (docs/protocol.md, "Errors" and "Ordering guarantees") predicts every control-lane
reply, in order; the audio is checked against the tone provider's exact durations; a final sentence
proves the connection is still usable. Meanwhile a companion thread runs well-behaved streams on the
same server, each compared frame by frame with a solo run of the same text.

CI runs a fixed (derandomized, database-less) set of examples. For a long manual run:
    STREAM_SERVER_FUZZ_EXAMPLES=3000 python -m pytest -q tests/test_fuzz.py
which draws fresh random examples each time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from stream_server.providers.tone import BEEP_MS, GAP_MS, SAMPLE_RATE, ToneProvider, word_count
from stream_server.server import WS_MAX_SIZE_FACTOR, WS_MAX_SIZE_FLOOR
from stream_server.text import without_emoji

from .conftest import RunningServer, run_server, tone_settings
from .helpers import Transcript

# Over 100k, so that 100k nested brackets reach the JSON parser instead of the size check.
MAX_MESSAGE_BYTES = 131_072
# Past this the WebSocket layer itself closes with 1009 (stream_server/server.py).
FRAME_LIMIT = max(WS_MAX_SIZE_FACTOR * MAX_MESSAGE_BYTES, WS_MAX_SIZE_FLOOR)
RECEIVE_TIMEOUT_S = 20.0
PCM_BYTES_PER_SAMPLE = 2

EXPLORE_EXAMPLES = int(os.environ.get("STREAM_SERVER_FUZZ_EXAMPLES", "0"))
# CI: the same examples on every run, no example database.
FUZZ_SETTINGS = settings(
    max_examples=EXPLORE_EXAMPLES or 300,
    derandomize=not EXPLORE_EXAMPLES,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)


# -- the server, in a thread of its own --------------------------------------------------------


# The server's own loggers (uvicorn's include "uvicorn.error", where uvicorn's WebSocket layer
# logs too). Nothing else counts: the test's clients log through "websockets.client" and other
# libraries' loggers, and a client's error is no fault of the server.
SERVER_LOGGERS = ("stream_server", "uvicorn")


def is_server_logger(name: str) -> bool:
    return any(name == root or name.startswith(root + ".") for root in SERVER_LOGGERS)


class ErrorRecords(logging.Handler):
    """Every ERROR the server reports: an exception in a connection shows up here even though uvicorn
    keeps the process alive. Attached to the server's loggers only, and it checks the name anyway;
    exceptions that reach the server's event loop unhandled come through `loop_exception`."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not is_server_logger(record.name):
            return
        # uvicorn's own answer to invalid UTF-8 in a text frame: it logs the decode error, then
        # closes with 1007 as RFC 6455 asks. Expected here; the close code is checked.
        if record.name == "uvicorn.error" and record.getMessage().startswith("Invalid UTF-8 sequence"):
            return
        self.records.append(record)

    def loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """The server loop's exception handler: a task that failed with nobody awaiting it, a
        callback that raised. Taken from the loop itself, not from the "asyncio" logger, which
        any event loop in the test process logs to."""
        message = f"{context.get('message')} {context.get('exception')!r}"
        self.records.append(logging.makeLogRecord({"name": "server event loop", "msg": message}))
        loop.default_exception_handler(context)

    def describe(self) -> list[str]:
        return [f"{r.name}: {r.getMessage()} {r.exc_text or ''}" for r in self.records]


@dataclass
class LiveServer:
    running: RunningServer
    thread: threading.Thread
    errors: ErrorRecords

    @property
    def ws_url(self) -> str:
        return self.running.ws_url

    def health(self) -> dict[str, Any]:
        response = httpx.get(f"{self.running.http_url}/healthz", timeout=10)
        response.raise_for_status()
        return response.json()

    def assert_unharmed(self) -> None:
        """Alive, every connection cleaned up, nothing logged as an error."""
        assert self.thread.is_alive(), "the server's thread has ended"
        stop_at = threading.Event()
        for _ in range(200):  # bounded: 200 polls, 50 ms apart
            if self.health()["streams"] == 0:
                break
            stop_at.wait(0.05)
        assert self.health()["streams"] == 0, "streams left open after every client closed"
        assert not self.errors.records, self.errors.describe()


@contextmanager
def server_in_thread() -> Iterator[LiveServer]:
    started: concurrent.futures.Future[tuple[RunningServer, asyncio.AbstractEventLoop, asyncio.Event]]
    started = concurrent.futures.Future()

    errors = ErrorRecords()

    async def serve() -> None:
        asyncio.get_running_loop().set_exception_handler(errors.loop_exception)
        stop = asyncio.Event()
        settings = tone_settings(max_message_bytes=MAX_MESSAGE_BYTES)
        async with run_server(settings, {"tone": ToneProvider()}) as running:
            started.set_result((running, asyncio.get_running_loop(), stop))
            await stop.wait()

    def main() -> None:
        try:
            asyncio.run(serve())
        except BaseException as exc:
            if not started.done():
                started.set_exception(exc)
            raise

    thread = threading.Thread(target=main, name="fuzz-server", daemon=True)
    thread.start()
    running, loop, stop = started.result(timeout=60)
    # After uvicorn applied its logging config, which replaces these loggers' handlers.
    watched = [logging.getLogger(name) for name in SERVER_LOGGERS]
    for logger in watched:
        logger.addHandler(errors)
    try:
        yield LiveServer(running, thread, errors)
    finally:
        for logger in watched:
            logger.removeHandler(errors)
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=60)
        assert not thread.is_alive(), "the server did not shut down"


@pytest.fixture(scope="module")
def live_module() -> Iterator[LiveServer]:
    with server_in_thread() as server:
        yield server


@pytest.fixture
def live(live_module: LiveServer) -> LiveServer:
    """The module's server, with the errors logged by earlier tests forgotten."""
    live_module.errors.records.clear()
    return live_module


# -- what the client sends ---------------------------------------------------------------------


@dataclass(frozen=True)
class StreamConfig:
    voice: str = "beep"
    frame_ms: int = 20
    speed: float = 1.0

    def frame_bytes(self) -> int:
        return SAMPLE_RATE * self.frame_ms // 1000 * PCM_BYTES_PER_SAMPLE

    def word_samples(self) -> int:
        return round((BEEP_MS + GAP_MS) * SAMPLE_RATE / 1000 / self.speed)


DEFAULT_CONFIG = StreamConfig()

Frame = str | bytes | tuple[str, ...]
"""A text frame, a binary frame, or a text message sent in fragments."""


@dataclass(frozen=True, kw_only=True)
class Step:
    label: str
    """Shown in hypothesis' report of a failing example."""

    def __repr__(self) -> str:
        return self.label


@dataclass(frozen=True, kw_only=True, repr=False)
class Send(Step):
    frame: Frame
    raw_text: bool = False
    """`frame` is bytes to be sent in a *text* frame, as they are (possibly invalid UTF-8)."""


@dataclass(frozen=True, kw_only=True, repr=False)
class Accepted(Send):
    """A valid text, flush or cancel."""

    chars: int = 0
    reply: str | None = None


@dataclass(frozen=True, kw_only=True, repr=False)
class Configure(Send):
    """A valid config: a new `ready` as the first message, else `config_too_late`."""

    config: StreamConfig


@dataclass(frozen=True, kw_only=True, repr=False)
class RefusedConfig(Send):
    """Well-formed, but asks for something the server does not have."""

    code: str


@dataclass(frozen=True, kw_only=True, repr=False)
class Malformed(Send):
    """Anything that is not a valid message: always `bad_message`, and nothing changes."""


@dataclass(frozen=True, kw_only=True, repr=False)
class Fatal(Send):
    """Ends the connection: an optional `error`, then the close code."""

    error: str | None
    close_code: int


@dataclass(frozen=True, kw_only=True, repr=False)
class Sync(Step):
    """Wait for every reply so far before sending more (else the client pipelines)."""

    label: str = "sync"


# -- the model: which control-lane replies, in which order -------------------------------------


def ready_reply(config: StreamConfig) -> tuple[str, ...]:
    return ("ready", config.voice, str(config.frame_ms), str(config.speed))


def error_reply(code: str) -> tuple[str, ...]:
    return ("error", code)


def control_replies(transcript: Transcript) -> list[tuple[str, ...]]:
    """The control lane as the client saw it: `ready`, `cancelled`, and errors that answer a message."""
    replies: list[tuple[str, ...]] = []
    for message in transcript.messages():
        if message["type"] == "ready":
            assert message["format"] == "pcm" and message["sample_rate"] == SAMPLE_RATE
            replies.append(("ready", message["voice"], str(message["frame_ms"]), str(float(message["speed"]))))
        elif message["type"] == "cancelled":
            replies.append(("cancelled",))
        elif message["type"] == "error":
            assert "seq" not in message, f"a segment failed: {message}"
            replies.append(error_reply(message["code"]))
    return replies


@dataclass
class Model:
    config: StreamConfig = DEFAULT_CONFIG
    first_message: bool = True
    configured: bool = True
    """False after a refused config: text, flush and end get `not_configured` until a valid one."""
    text_chars: int = 0
    replies: list[tuple[str, ...]] = field(default_factory=lambda: [ready_reply(DEFAULT_CONFIG)])

    def apply(self, step: Step) -> None:
        match step:
            case Accepted(reply=None) if not self.configured:
                self.replies.append(error_reply("not_configured"))
            case Accepted():
                # A cancel on an unconfigured stream does not use up the config.
                self.first_message = self.first_message and not self.configured
                self.text_chars += step.chars
                if step.reply:
                    self.replies.append((step.reply,))
            case Configure():
                if self.first_message:
                    self.config = step.config
                    self.replies.append(ready_reply(step.config))
                    self.first_message = False
                    self.configured = True
                else:
                    self.replies.append(error_reply("config_too_late"))
            case RefusedConfig():
                self.replies.append(error_reply(step.code if self.first_message else "config_too_late"))
                self.configured = self.configured and not self.first_message
            case Malformed():
                self.replies.append(error_reply("bad_message"))
            case Fatal():
                if step.error:
                    self.replies.append(error_reply(step.error))


# -- strategies --------------------------------------------------------------------------------

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "Hello", "world", "3.50", "e.g.", "Dr."]
SEPARATORS = [" ", ". ", "! ", "? ", ", ", "\n\n", "\t", "… ", "。", "\u3000"]
ODD = [
    "\u200f", "\u200e", "\u202e", "\u202c", "\u2067", "\u2069",  # RTL/LTR marks, overrides, isolates
    "\u0301", "\u0308\u0301\u0327", "e\u0301", "\u20dd",  # combining marks, alone and stacked
    "😀", "👩\u200d👩\u200d👧", "🇺🇸", "\U0001f3fd", "\ufe0f",  # emoji, ZWJ sequence, flag, modifier
    "\x00", "\x07", "\x1b[31m", "\x7f", "\ufeff", "\u200b", "\ufffd", "\uffff", "\U0010ffff",
    "\u2028", "\u2029", "\x85", "\x1c", "\u00a0",  # separators Python splits on, or not
    "مرحبا", "שלום", "ﷺ", "𒐫", "Z\u0351\u0364\u036b\u0300",
]  # fmt: skip
LONE_SURROGATES = ["\\ud800", "\\udfff", "\\ud83d", "\\ude00", "\\udc00\\ud800", "\\ud800\\u0041"]

text_pieces = st.one_of(
    st.sampled_from(WORDS),
    st.sampled_from(SEPARATORS),
    st.sampled_from(ODD),
    st.characters(codec="utf-8"),
)
texts = st.lists(text_pieces, max_size=10).map("".join)


def text_step(text: str, ascii_only: bool, fragments: int) -> Accepted:
    frame = json.dumps({"type": "text", "text": text}, ensure_ascii=ascii_only)
    label = f"text {text!r}"
    if fragments > 1 and len(frame) >= fragments:
        # One message in several WebSocket frames (continuation frames).
        cut = len(frame) // fragments
        pieces = tuple(frame[i * cut : (i + 1) * cut if i < fragments - 1 else None] for i in range(fragments))
        return Accepted(label=f"{label} in {fragments} fragments", frame=pieces, chars=len(text))
    return Accepted(label=label, frame=frame, chars=len(text))


accepted_steps = st.one_of(
    st.builds(text_step, texts, st.booleans(), st.integers(1, 3)),
    st.just(Accepted(label="flush", frame='{"type":"flush"}')),
    st.just(Accepted(label="cancel", frame='{"type":"cancel"}', reply="cancelled")),
)


@st.composite
def padded_to_the_limit(draw: st.DrawFn) -> Accepted:
    """Valid JSON of exactly the limit, or a few bytes under it: whitespace around a message."""
    inner, chars = draw(st.sampled_from([('{"type":"flush"}', 0), ('{"type":"text","text":"Padded."}', 7)]))
    size = MAX_MESSAGE_BYTES - draw(st.integers(0, 3))
    before = draw(st.integers(0, size - len(inner)))
    pad = draw(st.sampled_from(" \t\n\r"))
    frame = pad * before + inner + " " * (size - len(inner) - before)
    return Accepted(label=f"{inner} padded to {size} bytes", frame=frame, chars=chars)


CONFIGS: list[tuple[dict[str, Any], StreamConfig]] = [
    ({"voice": "low"}, StreamConfig(voice="low")),
    ({"frame_ms": 10}, StreamConfig(frame_ms=10)),
    ({"frame_ms": 40, "voice": "beep", "format": "pcm"}, StreamConfig(frame_ms=40)),
    ({"speed": 2.0, "sample_rate": SAMPLE_RATE}, StreamConfig(speed=2.0)),
    ({"speed": 0.5, "provider": "tone", "voice": ""}, StreamConfig(speed=0.5)),
    ({"voice": None, "format": "", "language": "en", "boundary_timeout_ms": 0}, DEFAULT_CONFIG),
]
config_steps = st.sampled_from(
    [Configure(label=f"config {c}", frame=json.dumps({"type": "config", **c}), config=cfg) for c, cfg in CONFIGS]
)
REFUSED_CONFIGS: list[tuple[dict[str, Any], str]] = [
    ({"voice": "nobody"}, "unknown_voice"),
    ({"format": "mp7"}, "unsupported_format"),
    ({"provider": "piper"}, "unknown_provider"),  # not loaded on this server
    ({"sample_rate": 12345}, "unsupported_sample_rate"),
    ({"frame_ms": 300}, "bad_frame_ms"),
    ({"format": "opus", "frame_ms": 25}, "bad_frame_ms"),
    ({"sample_rate": 22050, "frame_ms": 10}, "bad_frame_ms"),
]
refused_config_steps = st.sampled_from(
    [
        RefusedConfig(label=f"config {c}", frame=json.dumps({"type": "config", **c}), code=code)
        for c, code in REFUSED_CONFIGS
    ]
)

MESSAGE_FIELDS: dict[str, set[str]] = {
    "config": {
        "provider", "voice", "format", "sample_rate", "frame_ms", "speed", "language",
        "eager_first_segment", "boundary_timeout_ms", "max_lead_ms",
    },
    "text": {"text"},
    "flush": set(),
    "cancel": set(),
    "end": set(),
}  # fmt: skip
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
not_a_string = json_values.filter(lambda v: not isinstance(v, str))
not_a_number = json_values.filter(lambda v: v is not None and (isinstance(v, bool) or not isinstance(v, int | float)))
not_an_int = json_values.filter(lambda v: v is not None and (isinstance(v, bool) or not isinstance(v, int)))


def malformed(label: str, frame: str | bytes, raw_text: bool = False) -> Malformed:
    return Malformed(label=label, frame=frame, raw_text=raw_text)


def is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


@st.composite
def wrong_messages(draw: st.DrawFn) -> Malformed:
    """Valid JSON objects that are not valid messages."""
    kind = draw(st.sampled_from(sorted(MESSAGE_FIELDS)))
    base: dict[str, Any] = {"type": kind, "text": "Hi."} if kind == "text" else {"type": kind}
    variant = draw(st.integers(0, 7))
    if variant == 0:  # unknown type
        base["type"] = draw(st.text(max_size=10).filter(lambda t: t not in MESSAGE_FIELDS))
    elif variant == 1:  # no type
        del base["type"]
    elif variant == 2:  # an unknown field
        name = draw(st.text(max_size=10).filter(lambda n: n not in MESSAGE_FIELDS[kind] | {"type"}))
        base[name] = draw(json_values)
    elif variant == 3:  # a missing field
        base = {"type": "text"}
    elif variant == 4:  # a text that is not a string
        base = {"type": "text", "text": draw(not_a_string)}
    elif variant == 5:  # a config field of the wrong type
        name = draw(st.sampled_from(["provider", "voice", "format", "language"]))
        base = {"type": "config", name: draw(not_a_string.filter(lambda v: v is not None))}
    elif variant == 6:  # a number of the wrong type
        name = draw(st.sampled_from(["sample_rate", "frame_ms", "speed", "eager_first_segment", "max_lead_ms"]))
        base = {"type": "config", name: draw(not_a_number if name == "speed" else not_an_int)}
    else:  # a value out of range
        name, value = draw(
            st.sampled_from(
                [
                    ("speed", 0.1), ("speed", 4.5), ("speed", -1), ("sample_rate", 0), ("frame_ms", -20),
                    ("eager_first_segment", 101), ("boundary_timeout_ms", 60_001), ("max_lead_ms", -1),
                    ("language", "x!"), ("language", "english please"),
                ]
            )
        )  # fmt: skip
        base = {"type": "config", name: value}
    return malformed(f"wrong {json.dumps(base)[:80]}", json.dumps(base, ensure_ascii=draw(st.booleans())))


def nested_json(shape: str, depth: int) -> str:
    """JSON (or not quite) nested `depth` levels deep, in one of several shapes."""
    half = depth // 2
    match shape:
        case "open brackets":
            return "[" * depth
        case "open braces":
            return "{" * depth
        case "balanced brackets":
            return "[" * half + "]" * half
        case "nested text":
            return '{"type":"text","text":' + "[" * half + "]" * half + "}"
        case "nested unknown field":
            return '{"type":"flush","x":' + "[" * half + "]" * half + "}"
        case "nested objects":
            return '{"a":' * depth + "1" + "}" * depth
        case "nested before the type":
            return '{"text":' + "[" * half + "]" * half + ',"type":"text"}'
    raise ValueError(shape)


NESTED_SHAPES = (
    "open brackets",
    "open braces",
    "balanced brackets",
    "nested text",
    "nested unknown field",
    "nested objects",
    "nested before the type",
)


@st.composite
def deeply_nested(draw: st.DrawFn) -> Malformed:
    shape = draw(st.sampled_from(sorted(NESTED_SHAPES)))
    depth = draw(st.sampled_from([100_000, 10_000, 1_000]) | st.integers(1, 20_000))
    depth = min(depth, (MAX_MESSAGE_BYTES - 30) // 6)  # "nested objects" takes 6 bytes a level
    return malformed(f"{shape} x{depth}", nested_json(shape, depth))


@st.composite
def lone_surrogate(draw: st.DrawFn) -> Malformed:
    escape = draw(st.sampled_from(LONE_SURROGATES))
    return malformed(f"text with {escape}", '{"type":"text","text":"a' + escape + 'b"}')


@st.composite
def broken_json(draw: st.DrawFn) -> Malformed:
    valid = draw(st.sampled_from(['{"type":"end"}', '{"type":"text","text":"Hi there."}', '{"type":"cancel"}']))
    variant = draw(st.integers(0, 3))
    if variant == 0:
        cut = draw(st.integers(0, len(valid) - 1))
        return malformed(f"truncated {valid[:cut]!r}", valid[:cut])
    if variant == 1:
        tail = draw(st.sampled_from(["x", "{}", "\x00", " 1", "]"]))
        return malformed(f"trailing {tail!r}", valid + tail)
    if variant == 2:
        control = draw(st.sampled_from(["\x00", "\n", "\x1f"]))
        return malformed(f"raw control {control!r} in a string", '{"type":"text","text":"a' + control + 'b"}')
    return malformed("byte order mark", "\ufeff" + valid)


random_text_frames = (
    st.text(max_size=60).filter(lambda t: not is_json_object(t)).map(lambda t: malformed(f"random {t!r}", t))
)
random_binary_frames = st.one_of(
    st.binary(max_size=64),
    st.sampled_from([b'{"type":"end"}', b'{"type":"text","text":"Hi."}', b"\xff\xfe"]),
).map(lambda b: malformed(f"binary {b!r}", b))
non_objects = json_values.filter(lambda v: not isinstance(v, dict)).map(
    lambda v: malformed(f"json {v!r}", json.dumps(v))
)

malformed_steps = st.one_of(
    wrong_messages(),
    deeply_nested(),
    lone_surrogate(),
    broken_json(),
    random_text_frames,
    random_binary_frames,
    non_objects,
)

steps = st.one_of(
    accepted_steps,
    accepted_steps,
    config_steps,
    refused_config_steps,
    malformed_steps,
    malformed_steps,
    padded_to_the_limit(),
    st.just(Sync()),
)


@st.composite
def invalid_utf8(draw: st.DrawFn) -> Fatal:
    raw = draw(
        st.sampled_from(
            [b'{"type":"text","text":"\xff"}', b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"ok\xe2\x82"]
        )
        | st.binary(min_size=1, max_size=40).filter(lambda b: not is_utf8(b))
    )
    return Fatal(label=f"invalid UTF-8 text frame {raw!r}", frame=raw, raw_text=True, error=None, close_code=1007)


def is_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


@st.composite
def oversized(draw: st.DrawFn) -> Fatal:
    over = draw(st.integers(1, 3))
    if draw(st.booleans()):
        frame = '{"type":"flush"}' + " " * (MAX_MESSAGE_BYTES + over - 16)
        label = f"flush padded to limit+{over} bytes"
    else:
        # Under the limit in characters, over it in UTF-8 bytes.
        emoji = (MAX_MESSAGE_BYTES - 24) // 4 + over
        frame = json.dumps({"type": "text", "text": "😀" * emoji}, ensure_ascii=False)
        label = f"{emoji} emoji ({len(frame.encode())} bytes)"
    return Fatal(label=label, frame=frame, error="message_too_large", close_code=1009)


fatal_steps = st.one_of(
    invalid_utf8(),
    oversized(),
    st.just(Fatal(label="frame over the WebSocket limit", frame="[" * (FRAME_LIMIT + 1), error=None, close_code=1009)),
)


# -- running one example -----------------------------------------------------------------------


def send_frame(ws: ClientConnection, step: Send) -> None:
    if isinstance(step.frame, tuple):
        ws.send(step.frame)
    elif step.raw_text:
        ws.send(step.frame, text=True)
    else:
        ws.send(step.frame)


def receive_one(ws: ClientConnection, transcript: Transcript) -> None:
    data = ws.recv(timeout=RECEIVE_TIMEOUT_S)
    transcript.items.append(data if isinstance(data, bytes) else json.loads(data))


def receive_replies(ws: ClientConnection, transcript: Transcript, count: int) -> None:
    while len(control_replies(transcript)) < count:
        receive_one(ws, transcript)


def receive_to_close(ws: ClientConnection, transcript: Transcript) -> None:
    try:
        while True:
            receive_one(ws, transcript)
    except ConnectionClosed:
        pass


LAST_WORDS = "Still here."
RECONFIGURE = Configure(label="config of the defaults", frame='{"type":"config"}', config=DEFAULT_CONFIG)


def run_session(url: str, steps: list[Step], ending: Fatal | None) -> tuple[Model, Transcript, int | None]:
    model = Model()
    transcript = Transcript()
    with connect(url, max_size=None, open_timeout=RECEIVE_TIMEOUT_S, close_timeout=RECEIVE_TIMEOUT_S) as ws:
        for step in steps:
            model.apply(step)
            if isinstance(step, Send):
                send_frame(ws, step)
            else:
                receive_replies(ws, transcript, len(model.replies))
        if ending is None:
            # The connection is still usable: one more sentence, on a segment of its own (after a
            # config of the defaults if a refused one left the stream unconfigured).
            reconfigure = [] if model.configured else [RECONFIGURE]
            for step in [
                *reconfigure,
                Accepted(label="flush", frame='{"type":"flush"}'),
                text_step(LAST_WORDS, True, 1),
                Accepted(label="end", frame='{"type":"end"}'),
            ]:
                model.apply(step)
                send_frame(ws, step)
        else:
            # Every earlier reply first: the connection ends before queued replies could go out.
            receive_replies(ws, transcript, len(model.replies))
            model.apply(ending)
            try:
                send_frame(ws, ending)
            except ConnectionClosed:
                pass  # the server may close while a frame over its limit is still being sent
        receive_to_close(ws, transcript)
    return model, transcript, ws.close_code


def check_audio(model: Model, transcript: Transcript, tail_samples: int) -> None:
    """Every finished segment holds exactly the tone's audio for its text, in whole frames;
    `done` counts exactly what arrived."""
    config = model.config
    ends = {m["seq"]: m["audio_ms"] for m in transcript.messages("segment_end")}
    texts = {m["seq"]: m["text"] for m in transcript.messages("segment")}
    seqs = [m["seq"] for m in transcript.messages("segment")]
    assert seqs == sorted(set(seqs)), f"segments out of order or repeated: {seqs}"
    for seq, frames in transcript.frames_by_segment().items():
        assert all(len(f) == config.frame_bytes() for f in frames[:-1]), f"segment {seq}: partial frames"
        if seq not in ends:
            continue  # cut short by a cancel
        words = word_count(without_emoji(texts[seq]))  # the stream skips emoji (the default)
        samples = words * config.word_samples() + tail_samples if words else 0
        received = sum(len(f) for f in frames)
        assert received == samples * PCM_BYTES_PER_SAMPLE, f"segment {seq} {texts[seq]!r}: {received} bytes"
        assert ends[seq] == pytest.approx(received / PCM_BYTES_PER_SAMPLE / SAMPLE_RATE * 1000, abs=0.002)
    (done,) = transcript.messages("done")
    total = sum(len(f) for f in transcript.frames())
    assert done["segments"] == len(ends)
    assert done["audio_ms"] == pytest.approx(total / PCM_BYTES_PER_SAMPLE / SAMPLE_RATE * 1000, abs=0.01)
    assert done["text_chars"] == model.text_chars
    assert texts[max(texts)] == LAST_WORDS


def run_and_check(url: str, steps: list[Step], ending: Fatal | None, tail_samples: int) -> None:
    model, transcript, close_code = run_session(url, steps, ending)
    assert control_replies(transcript) == model.replies
    if ending is None:
        assert close_code == 1000
        check_audio(model, transcript, tail_samples)
    else:
        expected = {ending.close_code}
        if ending.error is None and ending.close_code == 1009:
            # A frame over the WebSocket layer's limit is refused while the client is still sending
            # it: the bytes left unread make the server's TCP stack reset the connection, and the
            # reset can overtake the close frame (the client then sees 1006).
            expected.add(1006)
        assert close_code in expected
        assert not transcript.messages("done")


# -- the well-behaved stream alongside ---------------------------------------------------------

COMPANION_TEXT = (
    " ".join(f"This is sentence {word} of the companion stream, and it carries on." for word in WORDS[:6])
    + " And the very last one ends here."
)


def well_behaved_run(url: str, seed: int) -> tuple[Any, ...]:
    """One stream of COMPANION_TEXT sent in small random chunks: what it received, without timings."""
    chunks: list[str] = []
    rng = random.Random(seed)
    position = 0
    while position < len(COMPANION_TEXT):
        size = rng.randint(1, 8)
        chunks.append(COMPANION_TEXT[position : position + size])
        position += size
    transcript = Transcript()
    with connect(url, open_timeout=RECEIVE_TIMEOUT_S) as ws:
        for chunk in chunks:
            ws.send(json.dumps({"type": "text", "text": chunk}))
        ws.send('{"type":"end"}')
        receive_to_close(ws, transcript)
        close_code = ws.close_code
    segments = tuple((seq, tuple(len(f) for f in frames)) for seq, frames in transcript.frames_by_segment().items())
    messages = tuple(
        tuple(sorted((k, v) for k, v in m.items() if k not in ("elapsed_ms", "ttfa_ms", "provider_ms")))
        for m in transcript.messages()
    )
    return close_code, segments, messages


class Companion(threading.Thread):
    """Runs well-behaved streams one after another until stopped; compares each with a solo run."""

    def __init__(self, url: str, reference: tuple[Any, ...]) -> None:
        super().__init__(name="fuzz-companion", daemon=True)
        self._url = url
        self._reference = reference
        self._stop_requested = threading.Event()
        self.runs = 0
        self.failures: list[str] = []

    def run(self) -> None:
        while not self._stop_requested.is_set():
            try:
                got = well_behaved_run(self._url, seed=self.runs)
            except (OSError, ConnectionClosed, ValueError, AssertionError) as exc:  # recorded: fails the test
                self.failures.append(f"run {self.runs}: {type(exc).__name__}: {exc}")
                return
            if got != self._reference:
                self.failures.append(f"run {self.runs}: {got!r:.2000}")
            self.runs += 1

    def stop(self) -> None:
        self._stop_requested.set()
        self.join(timeout=60)
        assert not self.is_alive(), "the companion stream hangs"


@contextmanager
def companion_running(url: str) -> Iterator[Companion]:
    reference = well_behaved_run(url, seed=-1)
    assert reference[0] == 1000 and len(reference[1]) == 7, reference
    companion = Companion(url, reference)
    companion.start()
    try:
        yield companion
    finally:
        companion.stop()


def tail_samples_of(url: str) -> int:
    """The samples the pipeline adds after a segment's last word, from a solo run of one word."""
    _, transcript, _ = run_session(url, [text_step("Solo.", True, 1)], None)
    (first, *_) = transcript.frames_by_segment().values()
    return sum(len(f) for f in first) // PCM_BYTES_PER_SAMPLE - DEFAULT_CONFIG.word_samples()


# -- the tests ---------------------------------------------------------------------------------

EVERY_KIND_ONCE = [
    RefusedConfig(label="config voice nobody", frame='{"type":"config","voice":"nobody"}', code="unknown_voice"),
    Configure(
        label="config low", frame='{"type":"config","voice":"low","frame_ms":40}', config=StreamConfig("low", 40)
    ),
    text_step("مرحبا \u202eolleh\u202c e\u0301\u0308 👩\u200d👩\u200d👧 a\x00b. ", False, 1),
    malformed("binary", b'{"type":"flush"}'),
    Malformed(label="invalid UTF-8 as binary", frame=b"\xff\xfe"),
    malformed("lone surrogate", '{"type":"text","text":"\\ud800"}'),
    malformed("100k [", "[" * 100_000),
    malformed("nested text", '{"type":"text","text":' + "[" * 50_000 + "]" * 50_000 + "}"),
    Accepted(label="padded flush", frame='{"type":"flush"}' + " " * (MAX_MESSAGE_BYTES - 16)),
    Sync(),
    Accepted(label="cancel", frame='{"type":"cancel"}', reply="cancelled"),
    Configure(label="config too late", frame='{"type":"config","voice":"beep"}', config=DEFAULT_CONFIG),
    text_step("One two three. Four", True, 3),
]


# A manual run takes about 0.1 s an example.
@pytest.mark.timeout(120 + EXPLORE_EXAMPLES // 2)
def test_random_sessions_get_precise_answers_while_a_good_stream_is_unaffected(live: LiveServer) -> None:
    tail = tail_samples_of(live.ws_url)
    assert 0 <= tail < SAMPLE_RATE // 100

    @FUZZ_SETTINGS
    @given(steps=st.lists(steps, max_size=14), ending=st.none() | fatal_steps)
    @example(steps=EVERY_KIND_ONCE, ending=None)
    @example(
        steps=EVERY_KIND_ONCE[:3],
        ending=Fatal(label="bad utf-8", frame=b"\xff", raw_text=True, error=None, close_code=1007),
    )
    @example(
        steps=[text_step("Hi.", True, 1)],
        ending=Fatal(label="limit+1", frame=" " * (MAX_MESSAGE_BYTES + 1), error="message_too_large", close_code=1009),
    )
    @example(steps=[], ending=Fatal(label="huge frame", frame="[" * (FRAME_LIMIT + 1), error=None, close_code=1009))
    def session(steps: list[Step], ending: Fatal | None) -> None:
        run_and_check(live.ws_url, steps, ending, tail)

    with companion_running(live.ws_url) as companion:
        session()
    assert not companion.failures, companion.failures
    assert companion.runs >= 1
    live.assert_unharmed()


def test_only_the_server_reports_count_as_its_errors(live: LiveServer) -> None:
    logging.getLogger("websockets.client").error("the test's client failed")
    logging.getLogger("asyncio").error("another event loop's task failed")
    assert not live.errors.records
    logging.getLogger("stream_server.session.stream").error("a server fault")
    logging.getLogger("uvicorn.error").error("a server fault")
    assert [r.name for r in live.errors.records] == ["stream_server.session.stream", "uvicorn.error"]


@pytest.mark.parametrize(
    ("shape", "depth"),
    [("nested objects", 1_000), ("nested before the type", 2_000), ("nested objects", 20_000)],
)
def test_deep_json_before_the_type_is_a_bad_message(live: LiveServer, shape: str, depth: int) -> None:
    # 1000 levels are about 2-6 kB: far under the default 64 KiB message limit.
    step = malformed(f"{shape} x{depth}", nested_json(shape, depth))
    run_and_check(live.ws_url, [step], None, tail_samples_of(live.ws_url))
    live.assert_unharmed()
