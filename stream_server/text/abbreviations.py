"""Per-language word lists: abbreviations that end in a period, and common sentence openers.

Entries are lower-case and written without their final period; inner periods stay ("e.g").
The segmenter looks up the word before a period (the text since the last whitespace) in them:

- `titles` never end a sentence: "Dr. Smith", "Mt. Fuji", "Alice vs. Bob", "e.g. apples".
  They are almost always followed by the thing they qualify, so even a capitalised next word
  ("Dr. Who") continues the sentence.
- `conditional` abbreviations may end a sentence ("... fruit, vegetables etc. Then we left.")
  and do so only when the next word starts with an upper-case letter: "etc. and more",
  "No. 5" and "p. 12" continue.
- `sentence_starters` (English only) are capitalised words that usually begin a sentence. After
  a dotted acronym or an initial ("U.S.", "a.m.", "E.") followed by a capitalised word, the
  sentence ends only if that word is one of them: "the U.S. Government" continues, "the U.S.
  How about you?" ends. Without a list (other languages) such a period ends the sentence before
  any capitalised word, and a single capital letter ("A. S. Pushkin") never ends one.
- `ordinal_numbers`: a period after a number of at most two digits is an ordinal, not an end
  ("am 3. Oktober", "im 19. Jahrhundert"): German.

`abbreviations_for` accepts any language code ("de", "de-DE", "pt_BR", "EN") and falls back to
English for languages it does not know, so a caller can pass a session language through without
checking it first.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

__all__ = [
    "ENGLISH",
    "EXCLAMATION_WORDS",
    "Abbreviations",
    "abbreviations_for",
    "base_language",
    "spaced_forms",
    "supported_languages",
]


@dataclass(frozen=True, slots=True)
class Abbreviations:
    """The word lists of one language (lower-case, no final period; starters as written)."""

    language: str
    titles: frozenset[str]
    conditional: frozenset[str]
    sentence_starters: frozenset[str] = frozenset()
    ordinal_numbers: bool = False


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Names that contain an exclamation mark: "She works at Yahoo! in sales" is one sentence.
# After them "!" behaves like a conditional abbreviation (ends before a capitalised word).
EXCLAMATION_WORDS = _words("yahoo jeopardy")

# Units, months and other short forms shared by several languages.
_COMMON_CONDITIONAL = _words("etc ca approx min max cm mm km kg mg ml")

_EN_TITLES = _words(
    # Titles and ranks before names.
    "mr mrs ms messrs dr prof rev hon gen col maj capt cmdr lt sgt cpl adm gov sen rep pres supt"
    " insp det st mt"  # "St. Anne", "Mt. Fuji"
    # Qualifiers followed by what they qualify.
    " vs v e.g i.e cf viz approx"
)
_EN_CONDITIONAL = _words(
    # Company and name suffixes: "Acme Inc. was", "Acme Inc. It was".
    "inc ltd co corp llc plc bros jr sr esq assn dept univ al"
    # References followed by a number: "No. 5", "p. 12", "Fig. 3", "Vol. 2".
    " no nos n° nº p pp fig figs vol vols ch chap sec art para eq eqs ref refs ed eds"
    # Months, days and places.
    " jan feb mar apr jun jul aug sep sept oct nov dec mon tue tues wed thu thur thurs fri sat sun"
    " ave blvd rd ln hwy apt bldg est ft"
    # Units and the like.
    " oz lb lbs hr hrs yr yrs mo mos sq pt pts tbsp tsp"
    " ph.d m.d b.a m.a b.sc m.sc"
)
# Capitalised words that usually begin a sentence (see the module docstring). Deliberately
# without words that are also common names or months ("May", "Will", "Mark").
_EN_STARTERS = _words(
    "A An The This That These Those There Here It Its I We You He She They My Our Your His Her"
    " Their But And Or So Yet Then Thus Hence However Therefore Also Still Now Meanwhile"
    " Moreover Furthermore Instead Otherwise Although Though Because Since While When Where"
    " What Which Who Whom Whose Why How If As After Before During In On At For From By With"
    " Without To Of Is Are Was Were Do Does Did Can Could Would Should Shall Must Might Have"
    " Has Had Let Please Yes No Not Some Many Most More All Each Every Both Few Several One"
    " Being Millions Thanks Today Tomorrow Yesterday Later Finally First Next Last"
    " Unfortunately Fortunately Perhaps Maybe"
)

ENGLISH = Abbreviations(
    language="en",
    titles=_EN_TITLES,
    conditional=_EN_CONDITIONAL | _COMMON_CONDITIONAL,
    sentence_starters=_EN_STARTERS,
)

_GERMAN = Abbreviations(
    language="de",
    titles=_words(
        "hr hrn fr frl dr prof dipl ing st z.b d.h u.a v.a s.o s.u u.u o.ä z.t i.d.r bzw vgl"
        " bzgl ggf evtl inkl exkl zzgl sog gem lt nr abs abb tel geb gest"
    ),
    conditional=_words(
        "usw u.s.w etc ca mio mrd tsd str jh jhd bd bde s ff kap jan feb febr mär apr jun jul"
        " aug sep sept okt nov dez mo di mi do fr sa so gmbh ag kg e.v"
    )
    | _COMMON_CONDITIONAL,
    ordinal_numbers=True,
)

_FRENCH = Abbreviations(
    language="fr",
    titles=_words(
        "mm mme mmes mlle mlles dr pr mgr st ste cf c.-à-d av apr env éd p.ex"
    ),
    conditional=_words(
        "etc p pp n° nº no vol chap fig art ex tél janv févr fév avr juil sept oct nov déc"
        " bd hab sa sarl"
    )
    | _COMMON_CONDITIONAL,
)

_SPANISH = Abbreviations(
    language="es",
    titles=_words(
        "sr sra sres srta dr dra lic ing arq ud uds vd vds dña dn sto sta prof p.ej ej av avda"
    ),
    conditional=_words(
        "etc pág págs p pp núm n.º nº no vol cap art tel aprox ee.uu s.a cía ene feb mar abr"
        " jun jul ago sept oct nov dic a.c d.c izq dcha"
    )
    | _COMMON_CONDITIONAL,
)

_ITALIAN = Abbreviations(
    language="it",
    titles=_words(
        "sig sigg sig.ra sig.na dott dott.ssa prof prof.ssa ing avv arch geom on rag mons"
        " sant spett egr gent cfr p.es es"
    ),
    conditional=_words(
        "ecc pag pagg p pp n nr num vol cap art tel ca gen feb mar apr mag giu lug ago sett ott"
        " nov dic s.p.a s.r.l"
    )
    | _COMMON_CONDITIONAL,
)

_PORTUGUESE = Abbreviations(
    language="pt",
    titles=_words(
        "sr sra srs srta dr dra drs prof profa exmo exma v.exa v.sa sto sta eng av p.ex"
    ),
    conditional=_words(
        "etc pág págs p pp n.º nº no núm vol cap art tel aprox ltda s.a cia jan fev abr jun"
        " jul ago set out nov dez"
    )
    | _COMMON_CONDITIONAL,
)

_RUSSIAN = Abbreviations(
    language="ru",
    titles=_words(
        "т.е т.к т.н напр см ср им проф акад доц ген полк г-н г-жа ул пр-т пл"
    ),
    conditional=_words(
        "т.д т.п др г гг в вв стр с сс рис табл тыс млн млрд руб коп д кв ч мин сек гл ст"
        " янв февр апр авг сент окт нояб дек"
    ),
)

_BY_LANGUAGE: dict[str, Abbreviations] = {
    lists.language: lists
    for lists in (ENGLISH, _GERMAN, _FRENCH, _SPANISH, _ITALIAN, _PORTUGUESE, _RUSSIAN)
}


@cache
def spaced_forms(lists: Abbreviations) -> tuple[frozenset[str], frozenset[str]]:
    """Abbreviations that may be written with spaces ("z. B.", "d. h.", "т. е.", "p. ej."):
    the entries whose parts all have one to three letters, and their proper prefixes
    ("i.d.r" -> "i", "i.d"). Both lower-case, parts joined by "." as in the lists."""
    entries = {
        entry
        for entry in lists.titles | lists.conditional
        if "." in entry and all(1 <= len(part) <= 3 and part.isalpha() for part in entry.split("."))
    }
    prefixes = {entry.rsplit(".", depth)[0] for entry in entries for depth in range(1, entry.count(".") + 1)}
    return frozenset(entries), frozenset(prefixes)


def base_language(language: str) -> str:
    """The lower-case base of a language code: "de-DE" -> "de", "pt_BR" -> "pt"."""
    return language.strip().lower().replace("_", "-").split("-", 1)[0]


def abbreviations_for(language: str) -> Abbreviations:
    """Lists for `language` ("en", "en-US", "DE_at" all work); unknown -> English."""
    return _BY_LANGUAGE.get(base_language(language), ENGLISH)


def supported_languages() -> list[str]:
    """The base language codes that have lists of their own."""
    return sorted(_BY_LANGUAGE)
