"""`python -m clients.python.say`: speak text or stdin (as it is typed or piped) into a file or stdout.

    python -m clients.python.say "Hello there." --out hello.wav
    llm "tell me a story" | python -m clients.python.say --stdin | aplay -f S16_LE -r 22050 -c 1

Exit codes: 0 done, 1 the server or the connection failed, 2 usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import AsyncIterable

from ..program import program_name
from .audio_file import CONTAINERS
from .errors import ConnectFailed, ConnectionLost, HandshakeRejected, InvalidServerUrl, ServerError, Unauthorized
from .messages import AudioChunk, Error, Event, Warning
from .output import OutputPlan, UsageError, plan_output
from .report import Reporter
from .stdin_text import stdin_chunks
from .stream import DEFAULT_URL, StreamOptions, connect, redacted
from .synthesize import ResultCollector, run_stream

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=program_name("clients.python.say"),
        description="Speak text with a stream_server: audio starts with the first sentence.",
    )
    parser.add_argument("text", nargs="?", help="the text to speak (or --stdin)")
    parser.add_argument("--stdin", action="store_true", help="speak standard input as it arrives, until EOF")
    parser.add_argument("--url", default=DEFAULT_URL, help=f"the server's stream endpoint (default {DEFAULT_URL})")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("STREAM_SERVER_API_KEY"),
        help="sent as Authorization: Bearer (default: $STREAM_SERVER_API_KEY)",
    )
    parser.add_argument("--token", help="a token from POST /v1/tokens, sent as ?token=")
    parser.add_argument("--provider", help="e.g. piper, tone, openai")
    parser.add_argument("--voice")
    parser.add_argument(
        "--format",
        default="pcm",
        help="what the server sends (default pcm). With pcm, --out FILE is encoded here by its extension; "
        "another format must make a file of that type (mp3 for .mp3; opus for .opus/.ogg/.webm is asked as the "
        "server's Ogg or WebM Opus), or go to stdout or a .raw file as it comes",
    )
    parser.add_argument("--sample-rate", type=int)
    parser.add_argument("--speed", type=float)
    parser.add_argument("--language", help="the text's language, for sentence segmentation")
    parser.add_argument(
        "--out",
        help=f"a file ({', '.join(CONTAINERS)}, or .raw) or - for stdout (the default when stdout is not a terminal)",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="timings per segment on stderr")
    args = parser.parse_args(argv)
    if (args.text is None) == (not args.stdin):
        parser.error("give the text to speak, or --stdin (not both)")
    return args


def stream_options(args: argparse.Namespace, plan: OutputPlan) -> StreamOptions:
    options = StreamOptions(format=plan.server_format, max_lead_ms=0)  # stored or piped, never cancelled: unpaced
    for name in ("provider", "voice", "sample_rate", "speed", "language"):
        if (value := getattr(args, name)) is not None:
            options[name] = value
    return options


async def speak(args: argparse.Namespace, plan: OutputPlan, reporter: Reporter) -> int:
    text: str | AsyncIterable[str] = stdin_chunks() if args.stdin else args.text
    async with connect(args.url, api_key=args.api_key, token=args.token, **stream_options(args, plan)) as stream:
        assert stream.ready is not None
        reporter.ready(stream.ready, to_stdout=plan.path is None)
        collector = ResultCollector(stream, keep_audio=False)
        failed = False
        sink = plan.open(stream.ready)

        def on_event(event: Event) -> None:
            nonlocal failed
            if isinstance(event, AudioChunk):
                first = collector.ttfa_ms is None
                sink.write(event.data)
                collector.add(event)
                if first:
                    reporter.first_audio(collector.ttfa_ms)
            elif isinstance(event, Error | Warning):
                failed |= isinstance(event, Error)  # a failed segment: go on, but say so at exit
                reporter.problem(event)
            elif timing := collector.add(event):
                reporter.segment(timing, collector.audio_ms)

        try:
            await run_stream(stream, text, on_event)
        finally:
            sink.close()
        assert stream.done is not None
        reporter.done(stream.done, collector.ttfa_ms)
    return EXIT_FAILED if failed else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    reporter = Reporter(sys.stderr, verbose=args.verbose, progress=sys.stderr.isatty())
    try:
        plan = plan_output(args.out, args.format, sys.stdout.isatty())
        return asyncio.run(speak(args, plan, reporter))
    except (UsageError, InvalidServerUrl) as exc:
        reporter.fail(str(exc))
        return EXIT_USAGE
    except Unauthorized as exc:
        hint = "check --api-key or $STREAM_SERVER_API_KEY" if args.api_key else "this server wants a key: pass --api-key or set $STREAM_SERVER_API_KEY"
        detail = f": {exc.detail}" if exc.detail else ""
        reporter.fail(f"unauthorized by {redacted(args.url)} (HTTP {exc.status}{detail}); {hint}")
        return EXIT_FAILED
    except HandshakeRejected as exc:
        reporter.fail(f"{redacted(args.url)} refused the connection: HTTP {exc.status} {exc.detail}".rstrip())
        return EXIT_FAILED
    except ServerError as exc:
        reporter.fail(f"server error {exc}")
        return EXIT_FAILED
    except (ConnectFailed, ConnectionLost) as exc:
        reporter.fail(str(exc))
        return EXIT_FAILED
    except BrokenPipeError:
        # The player quit. Point stdout at /dev/null so the interpreter's final flush stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        reporter.fail("output closed")
        return EXIT_FAILED
    except OSError as exc:  # writing the output file
        reporter.fail(f"cannot write {args.out}: {exc}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
