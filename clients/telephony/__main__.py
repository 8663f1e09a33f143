"""`python -m clients.telephony --port 8080 --server ws://127.0.0.1:8000/v1/tts/stream`"""

from __future__ import annotations

import argparse
import logging.config
import os
from typing import Any

import uvicorn

from stream_server.logs import configure_logging
from stream_server.settings_names import is_loopback

from ..program import program_name
from .app import create_bridge_app
from .options import BridgeOptions
from .twilio_auth import public_url_problem


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, BridgeOptions]:
    defaults = BridgeOptions()
    parser = argparse.ArgumentParser(prog=program_name("clients.telephony"), description=__doc__)
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
        "--twilio-auth-token",
        default=os.environ.get("TWILIO_AUTH_TOKEN"),
        help="accept /twilio only with a valid X-Twilio-Signature made with this token (default: $TWILIO_AUTH_TOKEN)",
    )
    parser.add_argument(
        "--public-url",
        help="the bridge's base URL as Twilio reaches it, what Twilio signs (e.g. wss://voice.example.com, "
        "when a TLS proxy is in front; default: the request's scheme and Host)",
    )
    parser.add_argument(
        "--insecure-no-twilio-auth",
        action="store_true",
        help="serve /twilio without a Twilio auth token on a non-loopback address (anyone could open calls)",
    )
    parser.add_argument(
        "--insecure-no-bot-auth",
        action="store_true",
        help="serve the bot API (/calls) without --bot-token on a non-loopback address (anyone could speak on calls)",
    )
    parser.add_argument(
        "--lead-ms", type=float, default=defaults.lead_ms, help="how far ahead of Twilio's playback audio is sent"
    )
    parser.add_argument("--max-calls", type=int, default=defaults.max_calls)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    if args.public_url is not None and (problem := public_url_problem(args.public_url)):
        parser.error(f"--public-url: {problem}")
    twilio_auth_token = args.twilio_auth_token or None
    if twilio_auth_token is None and not (args.insecure_no_twilio_auth or is_loopback(args.host)):
        # Exits with status 2, like the speech server's --insecure-no-auth policy.
        parser.error(
            f"no Twilio auth token is set, and {args.host!r} is not a loopback address: anyone who reaches "
            "the port could open calls on /twilio and spend speech. Set --twilio-auth-token (or "
            "$TWILIO_AUTH_TOKEN), or pass --insecure-no-twilio-auth to serve openly anyway"
        )
    if not args.bot_token and not (args.insecure_no_bot_auth or is_loopback(args.host)):
        parser.error(
            f"no bot token is set, and {args.host!r} is not a loopback address: anyone who reaches the port "
            "could put words into calls. Set --bot-token (or $TELEPHONY_BOT_TOKEN), or pass "
            "--insecure-no-bot-auth to serve the bot API openly anyway"
        )
    options = BridgeOptions(
        server_url=args.server,
        api_key=args.api_key or None,
        bot_token=args.bot_token or None,
        twilio_auth_token=twilio_auth_token,
        public_url=args.public_url,
        lead_ms=args.lead_ms,
        max_calls=args.max_calls,
    )
    return args, options


def log_config(level: str) -> dict[str, Any]:
    """The speech server's logging (one JSON object per line, secrets masked), for our loggers too."""
    config = configure_logging(level)
    config["loggers"]["clients"] = config["loggers"]["stream_server"]
    return config


def main(argv: list[str] | None = None) -> None:
    args, options = parse_args(argv)
    config = log_config(args.log_level)
    logging.config.dictConfig(config)
    uvicorn.run(create_bridge_app(options), host=args.host, port=args.port, log_config=config)


if __name__ == "__main__":
    main()
