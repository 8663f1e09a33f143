"""docs/api.md's `/healthz` and `/readyz` examples show every field a real server returns, so
they cannot drift (they once lacked `tasks`, `threads` and `draining`)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from .conftest import RunningServer

API_MD = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def documented_answer(path: str) -> dict[str, object]:
    """The JSON answer printed in the example of `## \\`GET {path}\\``."""
    section = API_MD.read_text().split(f"## `GET {path}`\n", 1)[1].split("\n## ", 1)[0]
    example = section.split("```\n", 1)[1].split("```", 1)[0]
    return json.loads(next(line for line in example.splitlines() if line.startswith("{")))


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
async def test_the_examples_show_every_field_the_server_returns(tone_server: RunningServer, path: str) -> None:
    async with httpx.AsyncClient(base_url=tone_server.http_url) as http:
        answer = (await http.get(path)).json()
    documented = documented_answer(path)
    assert set(answer) == set(documented), f"api.md's {path} example: {sorted(documented)}, server: {sorted(answer)}"
    tone_fields = set(answer["providers"]["tone"])
    assert tone_fields <= set(documented["providers"]["tone"])  # type: ignore[index]
