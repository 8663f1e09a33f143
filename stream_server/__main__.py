"""`python -m stream_server`: parse the settings, then serve."""

from __future__ import annotations

import sys

import uvicorn

from .server import uvicorn_config
from .settings import SettingsError, load_settings


def main(argv: list[str] | None = None) -> int:
    try:
        settings = load_settings(argv)
    except SettingsError as exc:
        print(f"stream_server: bad setting: {exc}", file=sys.stderr)
        return 2
    uvicorn.Server(uvicorn_config(settings)).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
