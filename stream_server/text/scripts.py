"""What a voice can read: the scripts a language is written in, and emoji, which voices read out
by name ("grinning face party popper") unless they are taken out first.

Pure functions on text, no I/O. `ScriptWatch` finds letters of a script the stream's language
does not cover (an English voice reads Chinese as "Chinese letter" per character), each script
once; `without_emoji` removes emoji before synthesis.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

__all__ = ["LANGUAGE_SCRIPTS", "ScriptWatch", "script_of", "scripts_for", "without_emoji"]

_LATIN = frozenset({"Latin"})
_CYRILLIC = frozenset({"Cyrillic"})
_ARABIC = frozenset({"Arabic"})
_DEVANAGARI = frozenset({"Devanagari"})

# The scripts each language is written in (its base code: "pt-BR" is "pt"). A language not here
# gets no warnings: nothing is known about it.
LANGUAGE_SCRIPTS: dict[str, frozenset[str]] = {
    **dict.fromkeys(
        "en de fr es it pt nl sv da no nb nn fi is pl cs sk sl hr bs ro hu tr ca eu gl et lv lt "
        "sq mt ga cy id ms tl sw vi az uz af lb".split(),
        _LATIN,
    ),
    **dict.fromkeys("ru uk be bg mk kk ky mn tg".split(), _CYRILLIC),
    "sr": frozenset({"Cyrillic", "Latin"}),
    **dict.fromkeys("ar fa ur ps".split(), _ARABIC),
    **dict.fromkeys("hi mr ne sa".split(), _DEVANAGARI),
    "zh": frozenset({"Han"}),
    "ja": frozenset({"Han", "Hiragana", "Katakana"}),
    "ko": frozenset({"Hangul", "Han"}),
    "he": frozenset({"Hebrew"}),
    "yi": frozenset({"Hebrew"}),
    "el": frozenset({"Greek"}),
    "th": frozenset({"Thai"}),
    "ka": frozenset({"Georgian"}),
    "hy": frozenset({"Armenian"}),
    "bn": frozenset({"Bengali"}),
    "ta": frozenset({"Tamil"}),
    "te": frozenset({"Telugu"}),
    "gu": frozenset({"Gujarati"}),
    "pa": frozenset({"Gurmukhi"}),
    "km": frozenset({"Khmer"}),
    "lo": frozenset({"Lao"}),
    "my": frozenset({"Myanmar"}),
    "am": frozenset({"Ethiopic"}),
}

# The first words of a letter's Unicode name that say its script, where that is not simply the
# first word ("CJK UNIFIED IDEOGRAPH-4E2D", "FULLWIDTH LATIN CAPITAL LETTER A").
_NAME_PREFIXES = (
    ("CJK", "Han"),
    ("FULLWIDTH LATIN", "Latin"),
    ("HALFWIDTH KATAKANA", "Katakana"),
    ("HANGUL", "Hangul"),
    ("ETHIOPIC", "Ethiopic"),
)


def scripts_for(language: str) -> frozenset[str] | None:
    """The scripts `language` ("en", "pt-BR", "zh_Hans") is written in; None when unknown."""
    return LANGUAGE_SCRIPTS.get(language.replace("_", "-").split("-", 1)[0].lower())


@lru_cache(maxsize=4096)
def script_of(char: str) -> str | None:
    """The script of a letter ("Latin", "Han", "Cyrillic"…); None for anything else: digits,
    punctuation, symbols, emoji, combining marks, and letters shared by scripts (the Japanese
    prolonged sound mark)."""
    if not unicodedata.category(char).startswith("L"):
        return None
    name = unicodedata.name(char, "")
    for prefix, script in _NAME_PREFIXES:
        if name.startswith(prefix):
            return script
    first = name.split(" ", 1)[0]
    if not first or "-" in first:  # "KATAKANA-HIRAGANA PROLONGED SOUND MARK": both
        return None
    return first.capitalize()


class ScriptWatch:
    """Letters of scripts the stream's language does not cover, each script reported once."""

    __slots__ = ("_expected", "_reported")

    def __init__(self, language: str) -> None:
        self._expected = scripts_for(language)
        self._reported: set[str] = set()

    def new_scripts(self, text: str) -> list[str]:
        """Scripts in `text` that the language does not cover and were not reported before."""
        if self._expected is None or text.isascii():
            return []
        found: list[str] = []
        for char in set(text):
            script = script_of(char)
            if script is not None and script not in self._expected and script not in self._reported:
                self._reported.add(script)
                found.append(script)
        return sorted(found)


# Emoji, as code point ranges (the Extended_Pictographic property, approximately, without the
# text symbols that read well: © ® ™ arrows, and the bullets and ‼ ⁉ the segmenter uses).
_EMOJI_RANGES = (
    (0x1F000, 0x1FAFF),  # mahjong, cards, enclosed, pictographs, emoticons, transport, supplemental
    (0x2600, 0x27BF),  # miscellaneous symbols, dingbats
    (0x231A, 0x231B), (0x2328, 0x2328), (0x23CF, 0x23CF), (0x23E9, 0x23F3), (0x23F8, 0x23FA),
    (0x2B05, 0x2B07), (0x2B1B, 0x2B1C), (0x2B50, 0x2B50), (0x2B55, 0x2B55),
    (0x3030, 0x3030), (0x303D, 0x303D), (0x3297, 0x3297), (0x3299, 0x3299),
)  # fmt: skip
# What only shapes an emoji: zero-width joiner, variation selectors, the keycap mark, tags.
_EMOJI_GLUE = frozenset("\u200d\ufe0e\ufe0f\u20e3") | frozenset(map(chr, range(0xE0020, 0xE0080)))


_EMOJI_TABLE = {
    code: None
    for low, high in _EMOJI_RANGES
    for code in range(low, high + 1)
} | {ord(char): None for char in _EMOJI_GLUE}  # fmt: skip


def without_emoji(text: str) -> str:
    """`text` without emoji (and the joiners and selectors that compose them), for a voice that
    would read them out by name. A keycap's digit stays ("1️⃣" is "1")."""
    if text.isascii():
        return text
    return text.translate(_EMOJI_TABLE)
