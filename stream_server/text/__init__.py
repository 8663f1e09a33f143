"""Text handling before synthesis: cutting streamed text into speakable segments.

Text arrives from an LLM a few characters at a time. Synthesis wants whole sentences (prosody
needs them) but latency wants them as early as possible. `SentenceSegmenter` emits each sentence
the moment the characters that decide its end have arrived, bounds segment length with
`max_chars` / `max_bytes` so text without punctuation still flows, knows abbreviations of
several languages (`language=`), never cuts inside brackets, quotes or markup, can cut a long
first sentence early (`eager_first_segment`), and tells a caller when flushing on silence is
safe (`pending_boundary`). It emits `Segment`s: the text, how it ended (`Ending`: a sentence, a
clause, a cut for length, the layout, a flush) and whether a blank line precedes it, so a
session can choose the pause after and before it. Its output does not depend on how the text
was chunked: feeding it piecewise gives exactly `split_segments(whole_text)`
(`split_sentences` gives the texts only). See docs/segmentation.md.

Modules: `segmenter` (the scan over the text), `verdicts` (what the rules decide at an event),
`sentence_ends` (terminators and abbreviations), `layout` (blank lines, list items, bullets),
`nesting` (open brackets and quotes), `markup` (SSML-style tags), `limits` (length bound and
where to cut), `segments` (the typed output: endings and paragraph starts), `abbreviations`
(word lists per language), `chars` (character classes), and `scripts` (what a voice can read:
the scripts a language covers, emoji taken out before synthesis).

Everything here is pure, synchronous code with no I/O.
"""

from .scripts import ScriptWatch, without_emoji
from .segmenter import SentenceSegmenter, split_segments, split_sentences
from .segments import Ending, Segment

__all__ = [
    "Ending",
    "ScriptWatch",
    "Segment",
    "SentenceSegmenter",
    "split_segments",
    "split_sentences",
    "without_emoji",
]
