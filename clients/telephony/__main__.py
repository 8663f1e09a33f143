"""`python -m clients.telephony --port 8080 --server ws://127.0.0.1:8000/v1/tts/stream`"""

from __future__ import annotations

import argparse
import logging
import os

import uvicorn

from .app import create_bridge_app
from .options import BridgeOptions


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, BridgeOptions]:
    defaults = BridgeOptions()
    parser = argparse.ArgumentParser(prog="python -m clients.telephony", description=__doc__)
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="listen address (Twilio needs a public wss:// URL: put a TLS proxy in front)",
    )
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--server", default=defaults.server_url, help="stream_server's WebSocket URL")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("STREAM_SERVER_API_KEY"),
        help="the server's API key (default: $STREAM_SERVER_API_KEY)",
    )
    parser.add_argument(
        "--bot-token",
        default=os.environ.get("TELEPHONY_BOT_TOKEN"),
        help="require `Authorization: Bearer TOKEN` on the bot API (default: $TELEPHONY_BOT_TOKEN)",
    )
    parser.add_argument(
        "--lead-ms", type=float, default=defaults.lead_ms, help="how far ahead of Twilio's playback audio is sent"
    )
    parser.add_argument("--max-calls", type=int, default=defaults.max_calls)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    options = BridgeOptions(
        server_url=args.server,
        api_key=args.api_key or None,
        bot_token=args.bot_token or None,
        lead_ms=args.lead_ms,
        max_calls=args.max_calls,
    )
    return args, options


def main(argv: list[str] | None = None) -> None:
    args, options = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(create_bridge_app(options), host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
