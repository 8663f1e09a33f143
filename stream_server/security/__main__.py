"""`python -m stream_server.security hash-key NAME`: a keys-file line for the key read on stdin."""

from __future__ import annotations

import argparse
import sys

from .keys import KeyStoreError, key_line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stream_server.security")
    commands = parser.add_subparsers(dest="command", required=True)
    hash_key = commands.add_parser("hash-key", help="print the keys-file line of the key read on stdin")
    hash_key.add_argument("name", help="the key's name (shown in logs and limits instead of the key)")
    args = parser.parse_args(argv)
    key = sys.stdin.readline().strip()
    if not key:
        print("hash-key: give the key on stdin", file=sys.stderr)
        return 2
    try:
        print(key_line(args.name, key))
    except KeyStoreError as exc:
        print(f"hash-key: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
