"""`python -m loadtest.emulators openai|gemini|ttsai --port N ...`: run one emulator on loopback."""

from __future__ import annotations

import argparse
import importlib
import sys

import uvicorn

from .common import add_common_arguments, options_from

EMULATORS = ("openai", "gemini", "ttsai")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.emulators", description=__doc__)
    parser.add_argument("provider", choices=EMULATORS)
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    module = importlib.import_module(f"loadtest.emulators.{args.provider}")
    app = module.create_app(options_from(args))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
