"""docs/protocol.md lists every field of every message the server sends, so it cannot drift.

Two checks: the message structs (every field the server could send) against the doc's tables, and
the messages a real server sends over a real WebSocket against the same tables.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path

from websockets.asyncio.client import connect

from stream_server.protocol import ServerMessage

from .conftest import RunningServer
from .helpers import Transcript, receive_all, receive_until, send

PROTOCOL_MD = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"
_ROW_RE = re.compile(r"^\| `(\w+)` \| (.*?) \|", re.MULTILINE)
_NAME_RE = re.compile(r"`(\w+)`")


def _section(text: str, heading: str) -> str:
    """The text under `heading` up to the next heading of the same or a higher level."""
    level = heading.split(" ", 1)[0]
    start = text.index(heading + "\n") + len(heading)
    ends = [m.start() for m in re.finditer(rf"^#{{1,{len(level)}}} ", text[start:], re.MULTILINE)]
    return text[start : start + ends[0]] if ends else text[start:]


def summary_table() -> dict[str, set[str]]:
    """The fields the message table of "Server → client messages" lists, by `type`."""
    text = PROTOCOL_MD.read_text()
    summary = _section(text, "## Server → client messages").split("\n### ", 1)[0]
    return {kind: set(_NAME_RE.findall(fields)) for kind, fields in _ROW_RE.findall(summary)}


def field_tables() -> dict[str, set[str]]:
    """The fields of the `| Field | Meaning |` table in a message's own section, where it has one."""
    text = PROTOCOL_MD.read_text()
    tables: dict[str, set[str]] = {}
    for kind in summary_table():
        heading = f"### `{kind}`"
        if heading + "\n" not in text:
            continue
        section = _section(text, heading)
        if "| Field | Meaning |" in section:
            table = section.split("| Field | Meaning |", 1)[1].split("\n\n", 1)[0]
            first_cells = (line.split(" | ", 1)[0] for line in table.splitlines() if line.startswith("| `"))
            tables[kind] = {name for cell in first_cells for name in _NAME_RE.findall(cell)}
    return tables


def struct_fields() -> dict[str, set[str]]:
    return {
        struct.__struct_config__.tag: set(struct.__struct_fields__)  # type: ignore[attr-defined]
        for struct in typing.get_args(ServerMessage)
    }


def test_every_field_of_every_server_message_is_in_the_tables() -> None:
    summary, tables = summary_table(), field_tables()
    assert set(tables) >= {"ready", "done"}
    for kind, fields in struct_fields().items():
        assert summary.get(kind) == fields, f"`{kind}` in the message table"
        if kind in tables:
            assert tables[kind] == fields, f"`{kind}`'s own field table"


async def test_every_field_a_server_sends_is_in_the_tables(tone_server: RunningServer) -> None:
    transcript = Transcript()
    async with connect(f"{tone_server.ws_url}?timestamps=char") as ws:
        await ws.send("not json")  # error
        await send(ws, type="text", text="Hello there.")
        await send(ws, type="flush")
        await receive_until(ws, "segment_end", transcript)
        await send(ws, type="cancel", played_ms=100)
        await receive_until(ws, "cancelled", transcript)
        await send(ws, type="text", text="And again. 你好。")  # a warning: Han text for English
        await send(ws, type="end")
        transcript.items += (await receive_all(ws)).items
    sent = transcript.messages()
    assert {m["type"] for m in sent} >= {
        "ready", "error", "segment", "alignment", "segment_end", "cancelled", "warning", "done"
    }  # fmt: skip
    assert "provider_ms" in transcript.messages("done")[0]
    assert {"last_sent", "last_heard", "played_ms", "audio_ms"} <= set(transcript.messages("cancelled")[0])
    assert "chars" in transcript.messages("alignment")[0]
    summary, tables = summary_table(), field_tables()
    for message in sent:
        fields = set(message) - {"type"}
        assert fields <= summary[message["type"]], message
        assert fields <= tables.get(message["type"], fields), message
