"""`python -m loadtest isolation`: every isolation scenario, one module after another.

    python -m loadtest isolation [--only cloud,sse_memory] [--server-source DIR] [--output FILE]

Run it twice, once with `--server-source` pointing at a checkout from before a change, to get the
before/after figures of the isolation issue from the same load generator.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Sequence

from . import Figure, markdown, parser

MODULES = ("cloud", "sse_memory", "sockets", "local_voice")


def main(argv: Sequence[str] | None = None) -> int:
    options = parser(__doc__.split("\n\n")[0])
    options.add_argument("--only", default=",".join(MODULES), help=f"any of {','.join(MODULES)}")
    options.add_argument("--output", default=None, help="also write the table to this Markdown file")
    args = options.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    if unknown := [name for name in chosen if name not in MODULES]:
        options.error(f"unknown module(s) {', '.join(unknown)}: choose from {','.join(MODULES)}")
    figures: list[Figure] = []
    started = time.monotonic()
    for name in chosen:
        module = importlib.import_module(f"loadtest.isolation.{name}")
        figures += module.measure(args.server_source)
    source = args.server_source or "this checkout"
    table = f"Servers from {source}; {time.monotonic() - started:.0f} s.\n\n{markdown(figures)}\n"
    print(table)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as output:
            output.write(table)
    return 0
