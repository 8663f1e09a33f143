"""What the server offers over Wyoming (`describe` -> `info`) and which voice a request names.

Every voice of every loaded provider is one Wyoming voice. Its name is the voice id
(`en_US-joe-medium`, `beep`), or `provider:id` where two providers share an id; both forms are
accepted in `synthesize`, so a Home Assistant set up for wyoming-piper keeps its voice names.
Sans I/O: built from the providers once, asked per request.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from wyoming.info import Attribution, Info, TtsProgram, TtsVoice
from wyoming.tts import SynthesizeVoice

from ... import __version__
from ...protocol import ErrorCode, ProtocolError
from ...providers import Provider
from ...providers.base import VoiceInfo

PROGRAM = "stream_server"
PROJECT = Attribution(name="stream_server", url="")
# Who made each provider's voices (Home Assistant shows it with the voice).
ATTRIBUTIONS = {
    "piper": Attribution(name="Piper (Open Home Foundation)", url="https://github.com/OHF-Voice/piper1-gpl"),
    "openai": Attribution(name="OpenAI", url="https://platform.openai.com/docs/guides/text-to-speech"),
    "gemini": Attribution(name="Google Gemini", url="https://ai.google.dev/gemini-api/docs/speech-generation"),
    "ttsai": Attribution(name="TTS.ai", url="https://tts.ai"),
}


@dataclass(frozen=True, slots=True)
class WyomingVoice:
    name: str
    provider: str
    voice: VoiceInfo

    @property
    def languages(self) -> list[str]:
        return [wyoming_language(self.voice.language)]


def wyoming_language(language: str) -> str:
    """Piper's `en-us` as Wyoming voices spell it: `en_US`."""
    parts = language.replace("-", "_").split("_")
    head, rest = parts[0].lower(), [p.upper() if len(p) == 2 else p for p in parts[1:]]
    return "_".join([head, *rest])


class Voices:
    def __init__(self, providers: Mapping[str, Provider], default_provider: str, default_voice: str | None) -> None:
        ids = Counter(v.id for provider in providers.values() for v in provider.voices)
        self._voices = [
            WyomingVoice(v.id if ids[v.id] == 1 else f"{name}:{v.id}", name, v)
            for name, provider in providers.items()
            for v in provider.voices
        ]
        self._by_name = {v.name: v for v in self._voices} | {f"{v.provider}:{v.voice.id}": v for v in self._voices}
        default = [v for v in self._voices if v.provider == default_provider]
        # The server's default voice first: a request naming only a language gets it if it fits.
        default.sort(key=lambda v: v.voice.id != default_voice)
        self._search_order = default + [v for v in self._voices if v.provider != default_provider]

    def __iter__(self) -> Iterator[WyomingVoice]:
        return iter(self._voices)

    def info(self) -> Info:
        providers = sorted({v.provider for v in self._voices})
        return Info(
            tts=[
                TtsProgram(
                    name=PROGRAM,
                    attribution=PROJECT,
                    installed=True,
                    description=f"stream_server: streaming speech ({', '.join(providers)})",
                    version=__version__,
                    voices=[self._tts_voice(v) for v in self._voices],
                    supports_synthesize_streaming=True,
                )
            ]
        )

    def resolve(self, requested: SynthesizeVoice | None) -> tuple[str, str] | None:
        """(provider, voice id) for a request's `voice`; None: the server's defaults.

        Raises `ProtocolError(unknown_voice)` for a name or language no voice has. A `speaker` is
        ignored: no voice here has several speakers.
        """
        if requested is None or (requested.name is None and requested.language is None):
            return None
        if requested.name is not None:
            found = self._by_name.get(requested.name)
            if found is None:
                raise ProtocolError(
                    ErrorCode.UNKNOWN_VOICE, f"no voice {requested.name!r}; available: {[v.name for v in self._voices]}"
                )
            return found.provider, found.voice.id
        wanted = wyoming_language(requested.language or "")
        for voice in self._search_order:
            spoken = voice.languages[0]
            if spoken == wanted or spoken.split("_")[0] == wanted:
                return voice.provider, voice.voice.id
        languages = sorted({v.languages[0] for v in self._voices})
        raise ProtocolError(ErrorCode.UNKNOWN_VOICE, f"no voice speaks {requested.language!r}; languages: {languages}")

    def _tts_voice(self, voice: WyomingVoice) -> TtsVoice:
        shown = voice.voice.name or voice.voice.id
        return TtsVoice(
            name=voice.name,
            attribution=ATTRIBUTIONS.get(voice.provider, PROJECT),
            installed=True,
            description=f"{shown} ({voice.provider})",
            version=None,
            languages=voice.languages,
        )
