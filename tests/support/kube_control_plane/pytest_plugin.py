"""Pytest fixtures for the real control plane; loaded by ``tests/conftest.py``.

- ``control_plane``: one :class:`ControlPlane` (etcd + kube-apiserver) for the whole session,
  started on first use;
- ``kube_namespace``: a fresh namespace per test (with its ``default`` ServiceAccount), emptied
  and deleted afterwards.

Without the binaries the tests that need them are skipped with the command that builds them;
under ``CI=true`` they fail instead: CI must never pass by skipping.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pytest

from ._process import ControlPlane, missing_binaries


def require_binaries() -> None:
    missing = missing_binaries()
    if not missing:
        return
    message = f"missing {', '.join(map(str, missing))}: run scripts/build-control-plane"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    require_binaries()
    with ControlPlane(tmp_path_factory.mktemp("control-plane")) as cp:
        yield cp


@pytest.fixture
def kube_namespace(control_plane: ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    prefix = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower().removeprefix("test_"))
    name = control_plane.create_namespace(prefix=prefix[:40].strip("-") or "t")
    try:
        yield name
    finally:
        control_plane.delete_namespace(name)
