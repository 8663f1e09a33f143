"""What names a setting (its option and its environment variable) and the error that names both;
whether a host is loopback (what decides if a server without keys may listen there).

Below `settings.py`, which re-exports them, so the settings, their loader and the modules that
check a setting's value share one spelling of every name.
"""

from __future__ import annotations

import ipaddress

ENV_PREFIX = "STREAM_SERVER_"


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


def setting_error(field: str, problem: str) -> SettingsError:
    """`problem` with the option and the environment variable of `field` that set it."""
    return SettingsError(f"{option_name(field)} / {env_name(field)}: {problem}")
