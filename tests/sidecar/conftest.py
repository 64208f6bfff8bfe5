"""Fixtures for the sidecar tests: a signer and a running ``hotconf-sidecar`` process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sidecar_harness import SidecarProcess, Signer


@pytest.fixture
def signer() -> Signer:
    return Signer()


@pytest.fixture
def sidecar(tmp_path: Path, signer: Signer) -> Iterator[SidecarProcess]:
    process = SidecarProcess(tmp_path, signer).start()
    try:
        yield process
    finally:
        if process.proc is not None and process.proc.poll() is None:
            process.kill()
