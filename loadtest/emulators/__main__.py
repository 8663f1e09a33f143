"""`python -m loadtest.emulators openai|gemini|ttsai --port N ...`: run one emulator on loopback.

On start it prints where it listens, the key it expects, and the settings that point a
stream_server at it."""

from __future__ import annotations

import argparse
import importlib
import socket
import sys

import uvicorn

from .common import add_common_arguments, options_from

EMULATORS = ("openai", "gemini", "ttsai")


def server_environment(provider: str, url: str, api_key: str) -> dict[str, str]:
    """The stream_server settings that make `provider` this emulator (and the only provider)."""
    prefix = f"STREAM_SERVER_{provider.upper()}"
    return {
        "STREAM_SERVER_PROVIDERS": provider,
        "STREAM_SERVER_PROVIDER": provider,
        f"{prefix}_BASE_URL": url,
        f"{prefix}_API_KEY": api_key,
    }


def announcement(provider: str, url: str, api_key: str) -> str:
    assignments = " ".join(f"{name}={value}" for name, value in server_environment(provider, url, api_key).items())
    return (
        f"{provider} emulator listening on {url}, expecting the API key {api_key!r}\n"
        f"point a stream_server at it with:\n  {assignments} .venv/bin/python -m stream_server"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.emulators", description=__doc__)
    parser.add_argument("provider", choices=EMULATORS)
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    module = importlib.import_module(f"loadtest.emulators.{args.provider}")
    app = module.create_app(options_from(args))
    # Bound here, so the URL printed is the one listened on (also with --port 0).
    listener = socket.create_server((args.host, args.port))
    host, port = listener.getsockname()[:2]
    print(announcement(args.provider, f"http://{host}:{port}", args.api_key), flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    server.run(sockets=[listener])
    return 0


if __name__ == "__main__":
    sys.exit(main())
