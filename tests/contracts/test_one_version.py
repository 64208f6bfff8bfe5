"""One version: pyproject.toml's ``version`` is the only place it is written; the installed
distribution's metadata carries it, and ``hotconf``, ``hotconf_wire``, ``hotconf_sidecar`` and
``hotconf_operator`` all expose that same ``__version__`` (the chart's appVersion is checked
against it in tests/packaging/test_chart_metadata.py)."""

from __future__ import annotations

import importlib
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def pyproject_version() -> str:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert "version" not in project.get("dynamic", [])
    found: str = project["version"]
    return found


def test_the_installed_metadata_is_pyprojects_version() -> None:
    # A stale install (pyproject bumped, .venv not reinstalled) fails here, not in production.
    assert version("hotconf") == pyproject_version()


@pytest.mark.parametrize(
    "package", ["hotconf", "hotconf_wire", "hotconf_sidecar", "hotconf_operator"]
)
def test_every_part_exposes_the_one_version(package: str) -> None:
    assert importlib.import_module(package).__version__ == pyproject_version()
