"""Settings from the command line and `STREAM_SERVER_*` variables (what they are: settings.py).

Every field of `Settings` is an option `--field-name` and a variable `STREAM_SERVER_FIELD_NAME`; a
provider's own fields are flattened with its name before them (`--openai-api-key`). The command
line wins over the environment, the environment over the default; msgspec validates the result,
and its message is rewritten to name the option.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from .providers.registry import SPECS_BY_NAME
from .settings import ENV_PREFIX, Settings, SettingsError, env_name, option_name, setting_error


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
        prog="stream-server",
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
