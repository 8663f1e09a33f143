"""`python -m stream_server.security hash-key NAME`: a keys-file line for the key read on stdin;
`hash-key --generate NAME` makes a random key, prints its line on stdout and the key on stderr."""

from __future__ import annotations

import argparse
import sys

from .keys import MIN_KEY_CHARS, KeyStoreError, key_line, new_key


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stream_server.security", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    hash_key = commands.add_parser(
        "hash-key",
        help="print the keys-file line of the key read on stdin (or of a new one, with --generate)",
        description=f"Keys must be at least {MIN_KEY_CHARS} characters; --generate makes a random one.",
    )
    hash_key.add_argument("name", help="the key's name (shown in logs and limits instead of the key)")
    hash_key.add_argument(
        "--generate",
        action="store_true",
        help="make a random key: its keys-file line goes to stdout, the key itself to stderr (give it to its user)",
    )
    args = parser.parse_args(argv)
    key = new_key() if args.generate else sys.stdin.readline().strip()
    if not key:
        print("hash-key: give the key on stdin, or --generate one", file=sys.stderr)
        return 2
    if len(key) < MIN_KEY_CHARS:
        print(
            f"hash-key: the key is {len(key)} characters, too short to be safe: use at least {MIN_KEY_CHARS} "
            f"random characters (hash-key --generate {args.name} makes one)",
            file=sys.stderr,
        )
        return 2
    try:
        line = key_line(args.name, key)
    except KeyStoreError as exc:
        print(f"hash-key: {exc}", file=sys.stderr)
        return 2
    print(line)
    if args.generate:
        print(f"{args.name}'s key (stored nowhere else, only its hash): {key}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
