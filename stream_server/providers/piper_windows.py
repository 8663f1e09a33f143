"""Which windows of a sentence's latent the decoder runs on, and which of their audio is kept.

Sans-I/O: frames in, windows out. The decoder (HiFi-GAN) is convolutional, so a frame's audio
depends on the latent within its receptive field only; a window decoded with `margin` frames of
context on each side, whose audio is then dropped, makes the audio of its own frames as the
whole-sentence decode does. Measured on en_US-joe-medium over a corpus (stitched against whole):
SNR 38 dB with 4 frames of margin, 67 dB with 8, 128 dB (float rounding) from 12 frames on;
tests/test_piper_chunked.py checks it. The first window is small, so the first audio leaves
early; the later ones are large, so the margins' repeated work and the per-run overhead stay
small (a typical 3 s sentence is two windows, about 10 % more frames decoded than one run).
"""

from __future__ import annotations

from dataclasses import dataclass

FIRST_WINDOW_FRAMES = 32
"""About 370 ms of audio at 22050 Hz and 256 samples per frame: the sentence's first sounds, and
long enough to play while the next window is decoded (about 0.15 s on two cores)."""
WINDOW_FRAMES = 256
"""About 3 s of audio: most sentences are the first window and one more, and a window holds a
worker for a fraction of a second (about 0.15 s on two cores)."""
MARGIN_FRAMES = 16
"""The decoder's receptive field is about 12 frames each side (see above); 16 to spare."""


@dataclass(frozen=True, slots=True)
class Window:
    start: int
    """First frame whose audio this window yields."""
    end: int
    """One past the last."""
    context_start: int
    """First frame given to the decoder (`start - margin`, or 0)."""
    context_end: int

    def kept(self, hop: int) -> slice:
        """The samples of the decoded context that belong to this window's own frames."""
        return slice((self.start - self.context_start) * hop, (self.end - self.context_start) * hop)


def plan_windows(
    frames: int,
    *,
    first: int = FIRST_WINDOW_FRAMES,
    size: int = WINDOW_FRAMES,
    margin: int = MARGIN_FRAMES,
) -> list[Window]:
    """Windows covering `frames` latent frames in order, without gaps or overlap of kept audio.

    A remainder shorter than half a window joins the window before it (one more job for a few
    frames would cost a turn of the pool and repeat the margins for little audio).
    """
    if frames <= 0:
        return []
    bounds = [0]
    step = first
    while bounds[-1] + step < frames:
        bounds.append(bounds[-1] + step)
        step = size
    if len(bounds) > 2 and frames - bounds[-1] < size // 2:
        bounds.pop()
    bounds.append(frames)
    return [
        Window(start, end, max(0, start - margin), min(frames, end + margin))
        for start, end in zip(bounds, bounds[1:])
    ]
