"""`python -m stream_server`: parse the settings, load the providers, then serve."""

from __future__ import annotations

import logging.config
import os
import sys
from collections.abc import Mapping, Sequence

from .app import check_stream_defaults
from .logs import configure_logging, tag_log_lines
from .protocol import ProtocolError
from .providers import build_providers
from .security import KeyStoreError
from .server import StreamServer, uvicorn_config
from .session.options import check_defaults
from .settings import Settings, SettingsError
from .settings_loader import load_settings
from .workers.handoff import Inherited
from .workers.supervisor import run_supervisor
from .transports.wyoming.endpoint import check_wyoming_settings


def load_server_settings(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """The settings the server starts with: loaded, and the stream defaults checked against the
    output formats (which the settings module, below the audio package, cannot know).

    Raises `SettingsError` naming the option, and `SystemExit` on `--help` or a malformed command line.
    """
    settings = load_settings(argv, environ)
    check_defaults(settings)
    check_wyoming_settings(settings)
    return settings


def main(argv: list[str] | None = None) -> int:
    try:
        settings = load_server_settings(argv)
    except SettingsError as exc:
        print(f"stream_server: bad setting: {exc}", file=sys.stderr)
        return 2
    logging.config.dictConfig(configure_logging(settings.log_level))
    inherited = Inherited.from_environ()
    if settings.workers > 1 and inherited is None:
        # The supervisor loads no model: each worker loads its own, as a single server does.
        tag_log_lines(pid=os.getpid(), worker="supervisor")
        return run_supervisor(settings, sys.argv[1:] if argv is None else argv)
    if inherited is not None:
        tag_log_lines(pid=os.getpid(), worker=inherited.index)
    # Models load here, before the port opens: the first client never waits for them.
    try:
        providers = build_providers(settings)
        check_stream_defaults(settings, providers)
    except (ProtocolError, OSError, ValueError) as exc:
        print(f"stream_server: bad setting: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a model file that is not a model, a voice config that is not JSON...
        print(f"stream_server: could not load the providers: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    try:
        config = uvicorn_config(settings, providers, owns_providers=True)  # reads the keys file
    except KeyStoreError as exc:
        print(f"stream_server: bad setting: --api-keys-file: {exc}", file=sys.stderr)
        return 2
    StreamServer(config, inherited).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
