"""Server settings: one typed struct, filled from the command line and `STREAM_SERVER_*` variables.

Every field of `Settings` is a command-line option (`--field-name`) and an environment variable
(`STREAM_SERVER_FIELD_NAME`); the command line wins over the environment, the environment over the
default. Each provider's own settings (declared by its module, see providers/spec.py) are nested
under its name, and flattened into options prefixed with it: `settings.openai.api_key` is
`--openai-api-key` and `STREAM_SERVER_OPENAI_API_KEY`. Values are validated by msgspec at start-up,
so a bad value stops the server with a message that names the option, instead of failing on the
first request.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from .media import OutputFormatName
from .providers.registry import PROVIDER_SPECS, SPECS_BY_NAME, ProviderName
from .providers.spec import ProviderSettings, SharedHttpSettings, masked_repr

ENV_PREFIX = "STREAM_SERVER_"

LogLevel = Literal["debug", "info", "warning", "error"]


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
        int, Meta(ge=1, le=1_000_000, description="Open HTTP requests and WebSockets at once (health endpoints excepted).")
    ] = 1000
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
        if any("=" not in pair for pair in self.deepgram_voice_map):
            raise ValueError(
                "give model=provider:voice pairs (e.g. aura-2-thalia-en=piper:en_US-joe-medium) - at `$.deepgram_voice_map`"
            )
        if any("=" not in pair for pair in self.speech_voice_map):
            raise ValueError("give Name=voice pairs (e.g. alloy=en_US-joe-medium) - at `$.speech_voice_map`")
        if not (self.api_keys or self.api_keys_file or self.insecure_no_auth or is_loopback(self.host)):
            raise ValueError(
                f"no API keys are configured, and {self.host!r} is not a loopback address: anyone who reaches "
                "the port could use the server (and its cloud credits). Set --api-keys or --api-keys-file, "
                "or pass --insecure-no-auth to serve openly anyway - at `$.insecure_no_auth`"
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


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SettingsError(ValueError):
    """A setting has a bad value; the message names the option and the environment variable."""


def option_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


@dataclass(frozen=True, slots=True)
class _Option:
    """One option and environment variable: a field of `Settings`, or a field of a provider's own
    settings, named with the provider's name before it (openai + api_key: --openai-api-key)."""

    name: str
    field: msgspec.structs.FieldInfo
    provider: str | None = None


def _flattened_options() -> tuple[_Option, ...]:
    options: list[_Option] = []
    for field in msgspec.structs.fields(Settings):
        spec = SPECS_BY_NAME.get(field.name)
        if spec is None:
            options.append(_Option(field.name, field))
        else:
            own = msgspec.structs.fields(spec.settings_type)
            options += [_Option(f"{spec.name}_{f.name}", f, spec.name) for f in own]
    return tuple(options)


_OPTIONS = _flattened_options()
_PROVIDER_OPTIONS = {option.name: option for option in _OPTIONS if option.provider is not None}


def _option_values(settings: ServerSettings) -> Iterator[tuple[str, Any]]:
    """Every option's value, by option name (openai_api_key...)."""
    for option in _OPTIONS:
        holder = settings if option.provider is None else settings.provider_settings(option.provider)
        yield option.name, getattr(holder, option.field.name)


def _nested(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Values by option name, nested as `Settings` holds them ({"openai": {"api_key": ...}})."""
    nested: dict[str, Any] = {}
    providers: dict[str, dict[str, Any]] = {}
    for name, value in raw.items():
        option = _PROVIDER_OPTIONS.get(name)
        if option is None or option.provider is None:
            nested[name] = value
        else:
            providers.setdefault(option.provider, {})[option.field.name] = value
    return {**nested, **providers}


def _description(field: msgspec.structs.FieldInfo) -> str:
    info = msgspec.inspect.type_info(field.type)
    schema = getattr(info, "extra_json_schema", None) or {}
    return schema.get("description", "")


def _is_sequence(field: msgspec.structs.FieldInfo) -> bool:
    info = msgspec.inspect.type_info(field.type)
    if isinstance(info, msgspec.inspect.Metadata):
        info = info.type
    return isinstance(info, msgspec.inspect.VarTupleType)


def _is_bool(field: msgspec.structs.FieldInfo) -> bool:
    info = msgspec.inspect.type_info(field.type)
    if isinstance(info, msgspec.inspect.Metadata):
        info = info.type
    return isinstance(info, msgspec.inspect.BoolType)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stream_server",
        description=(
            "Real-time streaming speech server. Every option can also be set with an "
            f"environment variable {ENV_PREFIX}<NAME> (e.g. {env_name('port')}=9000)."
        ),
    )
    for option in _OPTIONS:
        field = option.field
        default = field.default
        shown = ",".join(default) if isinstance(default, tuple) else default
        shown = "none" if shown in (None, "") else shown
        flag = _is_bool(field)
        parser.add_argument(
            option_name(option.name),
            dest=option.name,
            metavar=option.name.upper(),
            action="append" if _is_sequence(field) else "store",
            # A bool option alone means true (--insecure-no-auth); an explicit value still works.
            nargs="?" if flag else None,
            const="true" if flag else None,
            default=None,
            help=f"{_description(field)} [env {env_name(option.name)}; default: {shown}]",
        )
    return parser


def _split_list(values: Sequence[str]) -> list[str]:
    """List settings take comma-separated values, and on the command line repeated options too."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _raw_from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for option in _OPTIONS:
        value = environ.get(env_name(option.name))
        if value is not None:
            raw[option.name] = _split_list([value]) if _is_sequence(option.field) else value
    return raw


def _raw_from_args(args: argparse.Namespace) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for option in _OPTIONS:
        value = getattr(args, option.name)
        if value is not None:
            raw[option.name] = _split_list(value) if _is_sequence(option.field) else value
    return raw


def settings_from_raw(raw: Mapping[str, Any]) -> Settings:
    """Convert values by option name (strings from argv or the environment, or typed values;
    a provider's as `openai_api_key`) into a validated `Settings`."""
    try:
        return msgspec.convert(_nested(raw), Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(_explain(exc)) from None


def setting_error(field: str, problem: str) -> SettingsError:
    """`problem` with the option and the environment variable of `field` that set it."""
    return SettingsError(f"{option_name(field)} / {env_name(field)}: {problem}")


# msgspec ends its message with "- at `$.field`", once more per struct it is nested in
# ("... - at `$.speakers` - at `$.gemini`"): the outermost last.
_LOCATION = re.compile(r" - at `\$\.([^`]*)`$")


def _explain(exc: msgspec.ValidationError) -> str:
    """msgspec's message, naming the option instead of the field."""
    message = str(exc)
    path: list[str] = []
    while (location := _LOCATION.search(message)) is not None:
        path.append(location.group(1).split("[", 1)[0].replace(".", "_"))
        message = message[: location.start()]
    if not path:
        return message
    return str(setting_error("_".join(path), message))


def load_settings(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Settings from the command line over the environment over the defaults.

    Raises `SystemExit` (through argparse) on `--help` or a malformed command line and
    `SettingsError` on a value that does not validate.
    """
    args = build_parser().parse_args(argv)
    raw = _raw_from_env(os.environ if environ is None else environ)
    raw.update(_raw_from_args(args))
    return settings_from_raw(raw)
