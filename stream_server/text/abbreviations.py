"""Abbreviations that end in a period but usually do not end a sentence.

Entries are lower-case and written without their final period; inner periods stay ("e.g").
Two kinds, because they behave differently before the next word:

- `titles` never end a sentence: "Dr. Smith", "Fig. 3", "Alice vs. Bob". They are almost always
  followed by the thing they qualify, so even a capitalised next word ("Dr. Who") continues.
- `conditional` abbreviations may end a sentence ("... fruit, vegetables etc. Then we left.")
  and do so only when the next word starts with an upper-case letter ("etc. and more" continues).

Only English lists exist for now. `abbreviations_for` accepts any language code and falls back
to English for languages it does not know, so a caller can pass the session language through
without checking it first.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ENGLISH", "Abbreviations", "abbreviations_for"]


@dataclass(frozen=True, slots=True)
class Abbreviations:
    """The abbreviation lists of one language (lower-case, no final period)."""

    titles: frozenset[str]
    conditional: frozenset[str]


_EN_TITLES = frozenset(
    {
        # Titles before names.
        "dr", "mr", "mrs", "ms", "prof", "gen", "capt", "sgt", "lt", "col", "rev",
        # Places and references followed by a name or a number.
        "st", "mt", "no", "nos", "fig", "figs", "p", "pp", "vol",
        # Qualifiers followed by what they qualify.
        "vs", "approx",
    }
)  # fmt: skip

_EN_CONDITIONAL = frozenset(
    {
        "etc", "inc", "ltd", "co", "corp", "jr", "sr",
        "e.g", "i.e", "ph.d",
    }
)  # fmt: skip

ENGLISH = Abbreviations(titles=_EN_TITLES, conditional=_EN_CONDITIONAL)

_BY_LANGUAGE: dict[str, Abbreviations] = {"en": ENGLISH}


def abbreviations_for(language: str) -> Abbreviations:
    """Lists for `language` ("en", "en-US", "EN_gb" all mean English); unknown -> English."""
    base = language.strip().lower().replace("_", "-").split("-", 1)[0]
    return _BY_LANGUAGE.get(base, ENGLISH)
