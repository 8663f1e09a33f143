"""Server settings: one typed struct, filled from the command line and `STREAM_SERVER_*` variables.

Every field of `Settings` is a command-line option (`--field-name`) and an environment variable
(`STREAM_SERVER_FIELD_NAME`); the command line wins over the environment, the environment over the
default. Each provider's own settings (declared by its module, see providers/spec.py) are nested
under its name, and flattened into options prefixed with it: `settings.openai.api_key` is
`--openai-api-key` and `STREAM_SERVER_OPENAI_API_KEY`. Values are validated by msgspec at start-up,
so a bad value stops the server with a message that names the option, instead of failing on the
first request. Reading them (options, variables, messages): settings_loader.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from .media import OutputFormatName
from .providers.registry import PROVIDER_SPECS, ProviderName
from .providers.spec import ProviderSettings, SharedHttpSettings, masked_repr

# Re-exported: what names an option, and the errors that name one.
from .settings_names import (  # noqa: F401  (re-exported)
    ENV_PREFIX,
    SettingsError,
    env_name,
    is_loopback,
    option_name,
    setting_error,
)

LogLevel = Literal["debug", "info", "warning", "error"]


# The settings that map names onto this server's voices, and an example of their pairs.
_PAIR_EXAMPLES = {
    "cartesia_voice_map": ("id=provider:voice", "a0e99841-438c-4a64-b679-ae501e7d6091=piper:en_US-joe-medium"),
    "deepgram_voice_map": ("model=provider:voice", "aura-2-thalia-en=piper:en_US-joe-medium"),
    "elevenlabs_voice_map": ("id=provider:voice", "21m00Tcm4TlvDq8ikWAM=piper:en_US-joe-medium"),
    "speech_voice_map": ("Name=voice", "alloy=en_US-joe-medium"),
}


class ServerSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Every setting but the providers' own, which `Settings` (below) nests under their names."""

    host: Annotated[str, Meta(description="Interface to listen on.")] = "127.0.0.1"
    port: Annotated[int, Meta(ge=0, le=65535, description="TCP port (0 picks a free one).")] = 8000
    providers: Annotated[
        tuple[ProviderName, ...],
        Meta(
            min_length=1,
            description="Providers loaded at start-up (comma-separated, or repeat the option).",
        ),
    ] = ("piper", "tone")
    provider: Annotated[
        ProviderName, Meta(description="Default provider of a stream; one of --providers.")
    ] = "piper"
    fallback: Annotated[
        tuple[ProviderName, ...],
        Meta(
            description=(
                "Providers that take over a segment when the stream's provider fails before any "
                "audio of it, in order (e.g. openai,piper; each must be loaded)."
            )
        ),
    ] = ()
    voice: Annotated[
        str | None, Meta(description="Default voice id (default: the provider's first voice).")
    ] = None
    format: Annotated[
        OutputFormatName,
        Meta(description="Default output format: pcm, f32, mulaw, alaw, opus, ogg_opus, webm_opus, mp3, aac, flac, wav."),
    ] = "pcm"
    sample_rate: Annotated[
        int | None,
        Meta(description="Default pcm sample rate in Hz (default: the voice's own rate)."),
    ] = None
    frame_ms: Annotated[
        int, Meta(ge=5, le=200, description="Default duration of one binary audio frame, in ms.")
    ] = 20
    language: Annotated[
        str | None,
        Meta(description="Default language of the text, for segmentation (default: the voice's language)."),
    ] = None
    eager_first_segment: Annotated[
        int,
        Meta(ge=0, le=100, description="Cut the first segment at a comma after this many words (0: off)."),
    ] = 0
    boundary_timeout_ms: Annotated[
        int,
        Meta(ge=0, le=60_000, description="Silence in the text stream after which a possible sentence end is one."),
    ] = 150
    max_lead_ms: Annotated[
        int,
        Meta(
            ge=0,
            le=600_000,
            description="Send audio at most this far ahead of real time, so barge-in is quick (0: unpaced).",
        ),
    ] = 1500
    ring_ms: Annotated[
        int,
        Meta(ge=100, le=60_000, description="Per-stream buffer of encoded audio, in ms of audio."),
    ] = 2000
    max_streams: Annotated[
        int,
        Meta(ge=1, le=100_000, description="Streams open at once over every transport; more get server_busy."),
    ] = 200
    lookahead_segments: Annotated[
        int,
        Meta(ge=0, le=8, description="Segments synthesized ahead of the one being sent."),
    ] = 1
    max_segment_chars: Annotated[
        int,
        Meta(ge=20, le=4000, description="Longest segment; longer text is cut at a clause or space."),
    ] = 300
    max_message_bytes: Annotated[
        int,
        Meta(ge=256, le=16 * 1024 * 1024, description="Largest client WebSocket message accepted."),
    ] = 65536
    max_contexts: Annotated[
        int,
        Meta(
            ge=0,
            le=1000,
            description="Named contexts open at once on one /v1/tts/stream socket; one more is refused with too_many_contexts, the socket kept (0: none).",
        ),
    ] = 5
    max_pending_chars: Annotated[
        int,
        Meta(ge=100, description="Text a stream may hold that is not yet synthesized, in chars."),
    ] = 100_000
    opus_bitrate: Annotated[
        int, Meta(ge=6000, le=510_000, description="Opus bitrate in bit/s (opus, ogg_opus, webm_opus).")
    ] = 32000
    opus_complexity: Annotated[
        int, Meta(ge=0, le=10, description="Opus encoder complexity, 0 (fastest) to 10 (best).")
    ] = 5
    sentence_pause_ms: Annotated[
        int, Meta(ge=0, le=5000, description="Silence after a sentence.")
    ] = 200
    paragraph_pause_ms: Annotated[
        int, Meta(ge=0, le=5000, description="Silence after a paragraph (a blank line in the text).")
    ] = 450
    clause_pause_ms: Annotated[
        int, Meta(ge=0, le=5000, description="Silence after a piece cut at a comma or a flush.")
    ] = 80
    max_leading_silence_ms: Annotated[
        int, Meta(ge=0, le=5000, description="A provider's silence kept before a segment's first sound.")
    ] = 30
    max_trailing_silence_ms: Annotated[
        int, Meta(ge=0, le=5000, description="A provider's silence kept after a segment's last sound.")
    ] = 50
    fade_ms: Annotated[
        float, Meta(ge=0.5, le=50, description="Fade at a segment's first and last sound (no clicks).")
    ] = 5.0
    log_level: Annotated[LogLevel, Meta(description="Log level.")] = "info"
    deepgram_voice_map: Annotated[
        tuple[str, ...],
        Meta(
            description=(
                "/v1/speak (Deepgram's API): Deepgram models to this server's voices, model=provider:voice "
                "or model=voice pairs (e.g. aura-2-thalia-en=piper:en_US-joe-medium); other aura-* models "
                "get the default provider and voice."
            )
        ),
    ] = ()
    cartesia_voice_map: Annotated[
        tuple[str, ...],
        Meta(
            description=(
                "/tts/websocket, /tts/bytes, /tts/sse (Cartesia's API): Cartesia voice ids to this server's voices, "
                "id=provider:voice or id=voice pairs; other Cartesia (UUID) voice ids get the default provider and voice."
            )
        ),
    ] = ()
    cartesia_max_contexts: Annotated[
        int, Meta(ge=1, le=100, description="/tts/websocket: contexts open at once on one connection; a new one past it is refused with an error, the connection stays.")
    ] = 8
    elevenlabs_voice_map: Annotated[
        tuple[str, ...],
        Meta(
            description=(
                "/v1/text-to-speech/{voice_id}/... (ElevenLabs' API): ElevenLabs voice ids to this server's voices, "
                "id=provider:voice or id=voice pairs (e.g. 21m00Tcm4TlvDq8ikWAM=piper:en_US-joe-medium); a voice "
                "of this server is also taken as is."
            )
        ),
    ] = ()
    elevenlabs_max_contexts: Annotated[
        int,
        Meta(
            ge=1,
            le=100,
            description=(
                "ElevenLabs' multi-stream-input: contexts open at once on one socket (ElevenLabs' own cap); "
                "one more is refused with an error, the socket stays."
            ),
        ),
    ] = 5
    speech_voice_map: Annotated[
        tuple[str, ...],
        Meta(
            description=(
                "/v1/audio/speech: OpenAI voice names to this server's voices, Name=voice pairs "
                "(e.g. alloy=en_US-joe-medium); unmapped names get the provider's default voice."
            )
        ),
    ] = ()
    sse_resume_ms: Annotated[
        int, Meta(ge=0, le=600_000, description="SSE sessions: audio kept after delivery, for Last-Event-ID resumes.")
    ] = 5000
    sse_idle_s: Annotated[
        float, Meta(gt=0, le=86_400, description="SSE sessions: closed after this long without a reader or text.")
    ] = 60.0
    sse_keepalive_s: Annotated[
        float, Meta(gt=0, le=3600, description="SSE: a keep-alive comment after this long without an event.")
    ] = 15.0
    sse_finished_mb: Annotated[
        int,
        Meta(ge=0, le=100_000, description="SSE sessions: MB the events of finished sessions may keep in all (oldest forgotten first)."),
    ] = 64
    open_sessions_per_minute: Annotated[
        int,
        Meta(ge=0, le=1_000_000, description="Without keys: new SSE sessions per minute on the whole server (0: no limit)."),
    ] = 600

    # -- access: keys, browsers, limits, shutdown (docs/security.md) ------------------------------
    api_keys: Annotated[
        tuple[str, ...],
        Meta(description="API keys clients send as 'Authorization: Bearer KEY' (comma-separated; never logged)."),
    ] = ()
    api_keys_file: Annotated[
        str | None,
        Meta(description="File of hashed keys, a 'name sha256:HEX [limit=N...]' line each (stream_server.security hash-key makes one)."),
    ] = None
    insecure_no_auth: Annotated[
        bool, Meta(description="Serve without keys on a non-loopback address (anyone who reaches the port spends your credits).")
    ] = False
    allowed_origins: Annotated[
        tuple[str, ...],
        Meta(description="Browser origins besides the server's own that may use the API and WebSockets (* for any); also CORS."),
    ] = ()
    token_ttl_s: Annotated[
        int, Meta(ge=1, le=300, description="Lifetime of a browser token from POST /v1/tokens.")
    ] = 120
    key_max_streams: Annotated[
        int, Meta(ge=0, le=100_000, description="Streams one key may have open at once (0: no limit).")
    ] = 20
    key_streams_per_minute: Annotated[
        int, Meta(ge=0, le=1_000_000, description="New streams per key per minute (0: no limit).")
    ] = 120
    key_chars_per_minute: Annotated[
        int, Meta(ge=0, le=100_000_000, description="Characters of text per key per minute (0: no limit).")
    ] = 60_000
    max_connections: Annotated[
        int,
        Meta(
            ge=1,
            le=1_000_000,
            description=(
                "Open connections at once: every accepted socket, idle, still sending its request or "
                "streaming (health endpoints are answered past it)."
            ),
        ),
    ] = 1000
    header_timeout_s: Annotated[
        float,
        Meta(
            gt=0,
            le=3600,
            description="A connection that takes longer to send a request's line and headers (a WebSocket handshake's too) is closed.",
        ),
    ] = 10.0
    write_timeout_s: Annotated[
        float,
        Meta(
            gt=0,
            le=3600,
            description=(
                "A connection whose client takes none of what the server has to send for this long is "
                "closed (WebSocket, streamed HTTP, SSE); the default is 3 s past --ring-ms's 2 s."
            ),
        ),
    ] = 5.0
    idle_timeout_s: Annotated[
        float, Meta(gt=0, le=86_400, description="A stream waiting for text with nothing to send is closed after this long.")
    ] = 30.0
    max_stream_s: Annotated[
        float, Meta(gt=0, le=604_800, description="The longest a stream may stay open.")
    ] = 3600.0
    shutdown_grace_s: Annotated[
        float, Meta(ge=0, le=3600, description="On SIGTERM: how long running streams get to finish before they are closed.")
    ] = 30.0
    web_dir: Annotated[
        str | None,
        Meta(description="Folder of the browser demo served at / (default: the source tree's clients/web; empty: off)."),
    ] = None

    # -- many processes and machines (docs/scaling.md) ---------------------------------------------
    redis_url: Annotated[
        str | None,
        Meta(
            description=(
                "Redis shared by every server of a cluster (redis://[:PASSWORD@]HOST:PORT/DB, rediss:// for "
                "TLS): per-key limits, browser tokens, SSE sessions and cloud request slots hold across them. "
                "Off: each process keeps its own."
            )
        ),
    ] = None
    redis_lease_ttl_s: Annotated[
        float,
        Meta(
            ge=1,
            le=300,
            description=(
                "With --redis-url: lifetime of a stream's or a cloud request's lease in Redis, refreshed a third "
                "of it apart; a server that dies stops counting against the limits within it."
            ),
        ),
    ] = 10.0

    workers: Annotated[
        int,
        Meta(
            ge=1,
            le=64,
            description=(
                "Server processes sharing the port, each with its own event loop and local-voice pool, under "
                "one supervisor that restarts a crashed one (more than 1 needs --redis-url; docs/scaling.md)."
            ),
        ),
    ] = 1

    # -- Wyoming, for Home Assistant (docs/compat.md) ----------------------------------------------
    wyoming_uri: Annotated[
        str | None, Meta(description="Wyoming listener for Home Assistant: tcp://HOST:PORT or unix://PATH (off unless set).")
    ] = None
    wyoming_allow: Annotated[
        tuple[str, ...], Meta(description="Client networks the Wyoming listener answers besides loopback (CIDRs, e.g. 192.168.1.0/24).")
    ] = ()
    insecure_wyoming_open: Annotated[
        bool, Meta(description="Answer Wyoming clients from any address (Wyoming has no authentication).")
    ] = False
    wyoming_zeroconf: Annotated[
        bool, Meta(description="Announce the Wyoming listener over mDNS (_wyoming._tcp) so Home Assistant discovers it.")
    ] = False

    # -- what every cloud provider shares (each one's own settings are nested under its name) -----
    http_connect_timeout_s: Annotated[float, Meta(gt=0, le=120, description="Cloud providers: connect timeout.")] = 5.0
    http_read_timeout_s: Annotated[
        float, Meta(gt=0, le=600, description="Cloud providers: longest silence inside a streaming answer.")
    ] = 30.0
    http_retries: Annotated[
        int, Meta(ge=0, le=10, description="Cloud providers: retries of a segment before any of its audio.")
    ] = 2
    breaker_failures: Annotated[
        int, Meta(ge=1, le=1000, description="Failed segments in a row that open a provider's circuit breaker.")
    ] = 5
    breaker_cooldown_s: Annotated[
        float, Meta(gt=0, le=3600, description="Seconds an open breaker fails fast before a trial request.")
    ] = 30.0

    @property
    def shared_http(self) -> SharedHttpSettings:
        return SharedHttpSettings(
            connect_timeout_s=self.http_connect_timeout_s,
            read_timeout_s=self.http_read_timeout_s,
            retries=self.http_retries,
            breaker_failures=self.breaker_failures,
            breaker_cooldown_s=self.breaker_cooldown_s,
        )

    def provider_settings(self, name: str) -> ProviderSettings:
        """Provider `name`'s own settings: the field `Settings` nests them in (`settings.openai`)."""
        settings = getattr(self, name)
        assert isinstance(settings, ProviderSettings), name
        return settings

    def __repr__(self) -> str:
        return masked_repr("Settings", _option_values(self))  # by option name, as set

    def __post_init__(self) -> None:
        # Messages end like msgspec's own ("- at `$.field`") so `_explain` names the option.
        for name in self.fallback:
            if name not in self.providers:
                raise ValueError(f"fallback provider {name!r} is not loaded - at `$.fallback`")
        for field, (form, example) in _PAIR_EXAMPLES.items():
            if any("=" not in pair for pair in getattr(self, field)):
                raise ValueError(f"give {form} pairs (e.g. {example}) - at `$.{field}`")
        if not (self.api_keys or self.api_keys_file or self.insecure_no_auth or is_loopback(self.host)):
            raise ValueError(
                f"no API keys are configured, and {self.host!r} is not a loopback address: anyone who reaches "
                "the port could use the server (and its cloud credits). Set --api-keys or --api-keys-file, "
                "or pass --insecure-no-auth to serve openly anyway - at `$.insecure_no_auth`"
            )
        if self.workers > 1 and not self.redis_url:
            raise ValueError(
                f"{self.workers} workers need --redis-url: without it each worker keeps its own per-key limits "
                "(a key would get its limits once per worker), its own used browser tokens (a token would work "
                "once per worker) and its own SSE sessions (a session's requests landing on another worker "
                "would get 404). Give --redis-url, or run one worker - at `$.workers`"
            )
        if self.workers > 1 and self.wyoming_uri:
            raise ValueError(
                "the Wyoming listener is served by one process: run it with --workers 1 (or as a separate "
                "server) - at `$.workers`"
            )
        if self.provider not in self.providers:
            raise ValueError(
                f"the default provider {self.provider!r} is not loaded (providers: "
                f"{','.join(self.providers)}) - at `$.provider`"
            )
        # Whether the default format takes the default rate and frame duration is the stream
        # options' to say: session.options.check_defaults, run where the server loads its settings.


Settings = msgspec.defstruct(
    "Settings",
    [(spec.name, spec.settings_type, msgspec.field(default_factory=spec.settings_type)) for spec in PROVIDER_SPECS],
    bases=(ServerSettings,),
    module=__name__,
    kw_only=True,
    frozen=True,
    forbid_unknown_fields=True,
)
Settings.__doc__ = """The server's settings: `ServerSettings`, and each registered provider's own settings
nested under its name (`settings.openai.api_key`), built from the registry so that a new provider
needs no line here."""


def _option_values(settings: ServerSettings) -> Iterator[tuple[str, Any]]:
    """Every option's value, by option name (a provider's own prefixed: openai_api_key...)."""
    for field in msgspec.structs.fields(settings):
        value = getattr(settings, field.name)
        if isinstance(value, ProviderSettings):
            for own in msgspec.structs.fields(value):
                yield f"{field.name}_{own.name}", getattr(value, own.name)
        else:
            yield field.name, value
