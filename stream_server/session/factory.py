"""Streams made the same way for every transport: one core, one synthesis per epoch, built from
the server's settings and resources once, not per stream."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from functools import partial

from ..audio import AudioPipeline
from ..audio.pipeline import EncoderSettings
from ..audio.seams import SeamSettings
from ..providers import provider_default_voice
from ..providers.base import Provider, Share, VoiceOptions
from ..settings import Settings
from ..text import without_emoji
from .core import CoreLimits, StreamCore
from .options import StreamOptions
from .pauses import Pauses
from .runner import Stream
from .synthesis import Synthesis, SynthesisResources


class StreamFactory:
    def __init__(self, settings: Settings, providers: Mapping[str, Provider], resources: SynthesisResources) -> None:
        s = settings
        self._settings = settings
        self._providers = providers
        self._resources = resources
        self._core_limits = CoreLimits(ring_ms=s.ring_ms, max_pending_chars=s.max_pending_chars)
        self._encoder = EncoderSettings(opus_bitrate=s.opus_bitrate, opus_complexity=s.opus_complexity)
        self._seams = SeamSettings(
            fade_ms=s.fade_ms,
            max_leading_silence_ms=s.max_leading_silence_ms,
            max_trailing_silence_ms=s.max_trailing_silence_ms,
        )
        self._pauses = Pauses(
            sentence_ms=s.sentence_pause_ms, paragraph_ms=s.paragraph_pause_ms, clause_ms=s.clause_pause_ms
        )

    def stream(
        self,
        options: StreamOptions,
        stream_id: str,
        *,
        charge: Callable[[int], Awaitable[None]] | None = None,
        key: str = "anonymous",
    ) -> Stream:
        """`key` names whose stream it is (the API key's name), for providers that share a scarce
        resource fairly between keys and then between streams (Piper's inference workers)."""
        core = StreamCore(options, self._core_limits, time.monotonic())
        share = Share(key=key, stream=stream_id)
        synthesis = partial(self._synthesis, share=share)
        return Stream(core, synthesis, stream_id=stream_id, metrics=self._resources.metrics, charge=charge)

    def _synthesis(self, stream: Stream, epoch: int, options: StreamOptions, *, share: Share) -> Synthesis:
        voice = VoiceOptions(voice=options.voice, speed=options.speed, share=share)
        return Synthesis(
            stream,
            epoch,
            chain=[(self._providers[options.provider], voice), *self.fallbacks(options, share)],
            audio=AudioPipeline(options.format, options.sample_rate, options.frame_ms, self._encoder, self._seams),
            pauses=self._pauses,
            lookahead=self._settings.lookahead_segments,
            resources=self._resources,
            speakable=without_emoji if options.emoji == "skip" else None,
        )

    def fallbacks(self, options: StreamOptions, share: Share | None = None) -> list[tuple[Provider, VoiceOptions]]:
        """The fallback chain for a stream: each provider with its default voice, the stream's speed."""
        chain = []
        for name in self._settings.fallback:
            if name == options.provider:
                continue
            provider = self._providers[name]
            voices = [v.id for v in provider.voices]
            configured = provider_default_voice(self._settings, name)
            voice = configured if configured in voices else voices[0]
            chain.append((provider, VoiceOptions(voice=voice, speed=options.speed, share=share)))
        return chain
