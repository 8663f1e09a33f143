"""The text a load run speaks: the shipped corpus, cut into passages and LLM-like tokens.

A stream sends one passage: a few consecutive sentences of one corpus file, as tokens of one word
each with the whitespace that follows it (`"The "`, `"river. "`), the way an LLM streams text.
TTFA is measured from the token that completes the first sentence. Which token that is is decided
by the server's own segmenter (`stream_server.text.SentenceSegmenter`), fed token by token exactly
as the server is: the first token after which it emits a segment is the completing one. For
`"river. "` that is the token itself; the period alone would not be (the segmenter needs the
character after it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from stream_server.text import SentenceSegmenter, split_sentences

CORPUS_DIR: Final = Path(__file__).resolve().parent.parent / "corpus"
_WORD_WITH_SPACE: Final = re.compile(r"\S+\s*")


@dataclass(frozen=True, slots=True)
class Passage:
    tokens: tuple[str, ...]
    completing_index: int
    """Index of the token whose sending completes the first sentence (TTFA's reference)."""
    first_sentence: str
    """The first segment the server should cut, whitespace-trimmed as in its `segment` message."""

    @property
    def text(self) -> str:
        return "".join(self.tokens)


def load_sentences(corpus_dir: Path = CORPUS_DIR) -> list[str]:
    """Every sentence of every corpus file, in order (files by name), as the server cuts them."""
    files = sorted(corpus_dir.glob("*.txt"))
    if not files:
        raise FileNotFoundError(f"no corpus files (*.txt) in {corpus_dir}")
    sentences: list[str] = []
    for path in files:
        for paragraph in re.split(r"\n\s*\n", path.read_text(encoding="utf-8")):
            sentences += split_sentences(" ".join(paragraph.split()))
    return sentences


def tokenize(text: str) -> tuple[str, ...]:
    """One token per word, carrying the whitespace after it."""
    return tuple(_WORD_WITH_SPACE.findall(text))


def completing_token(tokens: tuple[str, ...]) -> tuple[int, str]:
    """(index of the first token after which the segmenter cuts a segment, that segment).

    If no token cuts one (a single sentence with no whitespace after it), it is the last token:
    the stream's `end` completes the sentence, and it is sent right after that token.
    """
    segmenter = SentenceSegmenter()
    for index, token in enumerate(tokens):
        segments = segmenter.push(token)
        if segments:
            return index, segments[0].text
    rest = segmenter.flush()
    if not rest:
        raise ValueError("the passage is empty")
    return len(tokens) - 1, rest[0].text


def make_passage(sentences: list[str]) -> Passage:
    # The trailing space lets the segmenter cut the last sentence as soon as it is sent, as with
    # an LLM that goes on talking; `end` follows anyway.
    tokens = tokenize(" ".join(sentences) + " ")
    index, first = completing_token(tokens)
    return Passage(tokens=tokens, completing_index=index, first_sentence=first)


class PassageSource:
    """Hands out passages of `sentences_per_stream` consecutive sentences, going round the corpus.

    Deterministic: the n-th passage is always the same text, so runs are comparable.
    """

    def __init__(self, sentences_per_stream: int, corpus_dir: Path = CORPUS_DIR) -> None:
        if sentences_per_stream < 1:
            raise ValueError("sentences_per_stream must be at least 1")
        self._sentences = load_sentences(corpus_dir)
        self._per_stream = min(sentences_per_stream, len(self._sentences))
        self._passages: dict[int, Passage] = {}
        self._next = 0

    def __len__(self) -> int:
        return len(self._sentences)

    def take(self) -> Passage:
        start = self._next % len(self._sentences)
        self._next += 1
        cached = self._passages.get(start)
        if cached is None:
            picked = [self._sentences[(start + i) % len(self._sentences)] for i in range(self._per_stream)]
            cached = self._passages[start] = make_passage(picked)
        return cached
