"""Character classes the segmenter looks at, in one place."""

from __future__ import annotations

__all__ = [
    "BULLETS",
    "CJK_CLAUSE",
    "CLAUSE_STRENGTH",
    "CLOSERS",
    "DOTS",
    "MARKDOWN_BULLETS",
    "OPENERS",
    "QUESTION_EXCLAIM",
    "RUN_CHARS",
    "STRONG_TERMINATORS",
    "is_cjk",
]

# Sentence punctuation. Consecutive ones form a run ("?!", "...", "。」") and only the last one of
# a run is judged, so "?!" is one terminator.
DOTS = ".…"
# "!" and "?" and their relatives, Arabic "؟" included: they end a sentence before whitespace.
QUESTION_EXCLAIM = "!?‼⁇⁈⁉؟"
# Full-width CJK stops and the Devanagari danda end a sentence without any space after them.
STRONG_TERMINATORS = "。！？｡।॥"
RUN_CHARS = frozenset(DOTS + QUESTION_EXCLAIM + STRONG_TERMINATORS)

# Closing quotes/brackets that stay with the sentence they close: `"Hi." she said` keeps `"Hi."`
# together. "“" and "«" are here for German („Hallo.“) and reversed guillemets (»Hallo.«).
CLOSERS = frozenset("\"'”’“)]}」』）】》»«›〉］")
# Opening quotes/brackets (and Spanish ¿ ¡) that may precede a word: skipped to find the case
# of a sentence's first letter.
OPENERS = "\"'“‘„‚([{「『（【《«»‹〈［¿¡"

# List bullets: one after whitespace starts a new segment ("• one • two").
BULLETS = "•‣◦⁃▪●"
# Markdown bullets count only at the start of a line and with a space after them.
MARKDOWN_BULLETS = "-*+"

# Clause punctuation where an overlong sentence may be cut, strongest first. Latin marks count
# when whitespace follows; the CJK ones need none (CJK text has no spaces).
CLAUSE_STRENGTH: dict[str, int] = {
    ";": 4, "；": 4,
    ":": 3, "：": 3,
    "—": 2, "–": 2,
    ",": 1, "，": 1, "、": 1,
}  # fmt: skip
CJK_CLAUSE = frozenset("；：，、")


def is_cjk(char: str) -> bool:
    """Kana or a CJK ideograph: scripts written without spaces between sentences."""
    code = ord(char)
    return 0x3040 <= code <= 0x30FF or 0x3400 <= code <= 0x4DBF or 0x4E00 <= code <= 0x9FFF
