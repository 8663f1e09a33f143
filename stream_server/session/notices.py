"""The server's own `warning`s to a stream's client (not answers to its messages): each kind at
most once per stream (a script once), so the control lane holds a bounded number of them."""

from __future__ import annotations

from ..protocol import ErrorCode, Warning
from ..text.scripts import scripts_for


def unsupported_script(script: str, language: str, seq: int) -> Warning:
    expected = ", ".join(sorted(scripts_for(language) or ()))
    message = (
        f"{script} text, but the stream's language {language!r} is written in {expected}: "
        "the voice may read it letter by letter (set `language` if it speaks it)"
    )
    return Warning(code=ErrorCode.UNSUPPORTED_SCRIPT, message=message, seq=seq)


def timestamps_unavailable(provider: str) -> Warning:
    message = f"{provider} gives no word timings: no `alignment` messages on this stream"
    return Warning(code=ErrorCode.TIMESTAMPS_UNAVAILABLE, message=message)
