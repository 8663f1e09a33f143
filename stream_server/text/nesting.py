"""Which brackets, quotes and markup elements are open: no sentence ends inside them.

"He teaches science (He worked as an engineer.) at the University." is one sentence, and so is
`“the laws will appear less complex. . . .”` and `<say-as interpret-as="date">Jan. 5</say-as>`.
The segmenter keeps a stack of what is open in the current segment; while it is not empty, a
terminator is not a boundary.

A stray opener ("12 (" or a quote never closed) must not stop segmentation for the rest of the
stream, so an opener protects at most `PROTECT_CHARS` characters after it. Whether a position
is protected is thus a function of the text before it, which keeps segmentation exact under any
chunking.

Matching: a closer pops the nearest opener it matches, and everything opened after that; a
closer that matches nothing is ignored. Characters that can both open and close (straight `"`,
German „…“, guillemets in both directions) close when something matches, and otherwise open only
where an opening quote can stand: after whitespace, an opening bracket, or at the segment start.
"""

from __future__ import annotations

__all__ = ["NESTING_CHARS", "PROTECT_CHARS", "Nesting"]

PROTECT_CHARS = 200  # how far past an opener its protection reaches
_MAX_DEPTH = 16  # deeper openers are ignored: keeps every operation O(1)

# closer -> the openers it closes
_CLOSES: dict[str, str] = {
    ")": "(", "]": "[", "}": "{",
    "”": "“„", "“": "„", "»": "«", "«": "»", '"': '"',
    "」": "「", "』": "『", "）": "（", "】": "【", "》": "《", "〉": "〈", "］": "［",
}  # fmt: skip
_ALWAYS_OPENS = frozenset("([{„「『（【《〈［")
_OPENS_AFTER_SPACE = frozenset('"“«»')
_OPENING_CONTEXT = frozenset("([{„“«»「『（【《〈［'‘¿¡")
_EMOTICON_EYES = frozenset(":;=")  # ":(" and ";)" are faces, not brackets
# Every character that changes the stack.
NESTING_CHARS = "".join(sorted(set(_CLOSES) | _ALWAYS_OPENS | _OPENS_AFTER_SPACE))


class Nesting:
    """The stack of open brackets, quotes and elements, with their buffer positions."""

    __slots__ = ("_stack",)

    def __init__(self) -> None:
        # (kind, position): kind is the opening character, or "<name" for a markup element.
        self._stack: list[tuple[str, int]] = []

    def clear(self) -> None:
        self._stack.clear()

    def shift(self, delta: int) -> None:
        """The buffer lost `delta` characters at its front."""
        self._stack = [(kind, pos - delta) for kind, pos in self._stack]

    def expire(self, index: int) -> None:
        """Forget openers whose protection ended before `index` (the oldest are at the bottom)."""
        stack = self._stack
        drop = 0
        while drop < len(stack) and index - stack[drop][1] > PROTECT_CHARS:
            drop += 1
        if drop:
            del stack[:drop]

    def protects(self, index: int) -> bool:
        """Is `index` inside something open (and recent enough)?"""
        return bool(self._stack) and index - self._stack[-1][1] <= PROTECT_CHARS

    def protects_after_closers(self, closers: str, index: int) -> bool:
        """Would `index` still be protected once `closers` (right after it) closed what they match?"""
        if not self._stack:
            return False
        stack = list(self._stack)
        for char in closers:
            _pop_match(stack, _CLOSES.get(char, ""))
        return bool(stack) and index - stack[-1][1] <= PROTECT_CHARS

    def on_char(self, char: str, index: int, previous: str) -> None:
        """Update for a bracket or quote at `index`; `previous` is the character before it
        (a space at the segment start)."""
        if char in "()" and previous in _EMOTICON_EYES:
            return
        if _pop_match(self._stack, _CLOSES.get(char, "")):
            return
        if char in _ALWAYS_OPENS or (
            char in _OPENS_AFTER_SPACE and (previous.isspace() or previous in _OPENING_CONTEXT)
        ):
            self._push(char, index)

    def open_element(self, name: str, index: int) -> None:
        self._push("<" + name, index)

    def close_element(self, name: str) -> None:
        stack = self._stack
        for depth in range(len(stack) - 1, -1, -1):
            if stack[depth][0] == "<" + name:
                del stack[depth:]
                return

    def _push(self, kind: str, index: int) -> None:
        if len(self._stack) < _MAX_DEPTH:
            self._stack.append((kind, index))


def _pop_match(stack: list[tuple[str, int]], openers: str) -> bool:
    """Pop the nearest entry whose kind is one of `openers`, with everything above it."""
    if not openers:
        return False
    for depth in range(len(stack) - 1, -1, -1):
        if stack[depth][0] in openers and len(stack[depth][0]) == 1:
            del stack[depth:]
            return True
    return False
