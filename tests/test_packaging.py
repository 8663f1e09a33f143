"""What `pip install .` installs: the server and its clients, and their console scripts.

The scripts are run from the virtualenv's bin in a directory outside the repository, so they must
work as installed (not by virtue of the repository root being on sys.path)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from setuptools import find_packages

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
SCRIPTS = PYPROJECT["project"]["scripts"]


def test_the_clients_are_packaged_with_the_server() -> None:
    packages = set(find_packages(str(REPO), **PYPROJECT["tool"]["setuptools"]["packages"]["find"]))
    assert {"stream_server", "clients", "clients.python", "clients.telephony"} <= packages
    for target in SCRIPTS.values():
        module = target.split(":")[0]
        assert module.rsplit(".", 1)[0] in packages or module in packages, target


def test_every_script_is_in_readme() -> None:
    readme = (REPO / "README.md").read_text()
    assert sorted(name for name in SCRIPTS if f"`{name}`" not in readme) == []


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_console_script_runs_from_anywhere(name: str, tmp_path: Path) -> None:
    script = Path(sys.executable).parent / name
    assert script.exists(), f"{script} is missing: reinstall with `.venv/bin/pip install -e .`"
    result = subprocess.run([str(script), "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: ")


def test_readme_runs_python_one_way() -> None:
    """Every example runs the venv's interpreter as the set-up does, so none fails outside the venv."""
    readme = (REPO / "README.md").read_text()
    bare = [line for line in readme.splitlines() if re.search(r"(?<![\w/.])python (-m|-c) ", line)]
    assert bare == []
