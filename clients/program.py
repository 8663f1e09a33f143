"""The name a command-line client is run by, for its usage lines: `stream-say` when run as the
installed console script, `python -m clients.python.say` when run as a module."""

from __future__ import annotations

import os
import sys


def program_name(module: str) -> str:
    script = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if not script or script.endswith(".py") or script == "-c":
        return f"python -m {module}"
    return script
