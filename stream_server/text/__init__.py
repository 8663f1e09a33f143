"""Text handling before synthesis: cutting streamed text into speakable segments.

Text arrives from an LLM a few characters at a time. Synthesis wants whole sentences (prosody
needs them) but latency wants them as early as possible. `SentenceSegmenter` emits each sentence
the moment the characters that decide its end have arrived, and bounds segment length with
`max_chars` so text without punctuation still flows. Its output does not depend on how the text
was chunked: feeding it piecewise gives exactly `split_sentences(whole_text)`.

Everything here is pure, synchronous code with no I/O.
"""

from .segmenter import SentenceSegmenter, split_sentences

__all__ = ["SentenceSegmenter", "split_sentences"]
