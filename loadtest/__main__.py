"""`python -m loadtest run|bench|ttfa|provider|encode|segmenter|soak|isolation|emulators|compat|timestamps|piper-first-audio ...`
(see loadtest/README.md).

`run` and `bench` are this package's load generator and benchmark suite; the other names hand
the rest of the command line to the existing tools (`python -m loadtest.ttfa` etc. still work).
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Sequence

# name -> module whose main(argv) takes the rest of the command line
COMMANDS = {
    "run": "loadtest.load.cli",
    "bench": "loadtest.bench",
    "ttfa": "loadtest.ttfa",
    "provider": "loadtest.provider_bench",
    "encode": "loadtest.encode_bench",
    "segmenter": "loadtest.segmenter_bench",
    "soak": "loadtest.soak",
    "isolation": "loadtest.isolation.run",
    "emulators": "loadtest.emulators.__main__",
    "compat": "loadtest.compat_ttfa",
    "timestamps": "loadtest.timestamps",
    "piper-first-audio": "loadtest.piper_first_audio",
}

USAGE = """usage: python -m loadtest COMMAND [options]   (python -m loadtest COMMAND --help for its options)

  run         N concurrent LLM-like streams over WebSocket/SSE: TTFA, gaps, underruns, CPU, RSS
  bench       the standard suite; writes BENCHMARKS.md
  ttfa        time to first audio against Piper's own HTTP server (loadtest/ttfa.py)
  provider    what the server adds to a cloud provider's latency (loadtest/provider_bench.py)
  encode      encoding throughput per format (loadtest/encode_bench.py)
  segmenter   segmentation accuracy and throughput (loadtest/segmenter_bench.py)
  soak        leak and integrity soak (loadtest/soak.py)
  isolation   can one user starve, stall or exhaust the server for others (loadtest/isolation)
  emulators   run a cloud provider emulator (loadtest/emulators)
  compat      first audio through the vendor-protocol adapters vs our own (loadtest/compat_ttfa.py)
  timestamps  Piper's word timings against Whisper's word timestamps (loadtest/timestamps.py)
  piper-first-audio  the Piper voice's first audio, chunked vs one-shot (loadtest/piper_first_audio.py)"""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help") or args[0] not in COMMANDS:
        print(USAGE, file=sys.stderr if args and args[0] not in ("-h", "--help") else sys.stdout)
        return 0 if args and args[0] in ("-h", "--help") else 2
    module = importlib.import_module(COMMANDS[args[0]])
    sys.argv = [f"python -m loadtest {args[0]}", *args[1:]]
    try:
        # segmenter_bench's main() reads sys.argv itself.
        takes_argv = bool(inspect.signature(module.main).parameters)
        result = module.main(args[1:]) if takes_argv else module.main()
    except KeyboardInterrupt:
        print("\ninterrupted; every server started here was stopped", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
