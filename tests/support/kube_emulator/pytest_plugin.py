"""Pytest fixtures for the emulated Kubernetes API; loaded by ``tests/conftest.py``.

- ``kube_emulator_process``: a fresh ``python -m kube_emulator`` per test (``EmulatorProcess``);
- ``kubeconfig``: the path of its kubeconfig;
- ``kube_env``: sets ``KUBECONFIG`` for the test (monkeypatch) and returns ``{"KUBECONFIG": ..}``;
- ``kube_emulator_server``: an in-process ``EmulatorServer`` (async; same event loop as the test);
- ``kubectl``: runs ``.tools/bin/kubectl`` (1.20) against ``kube_emulator_process``; skips the
  test if ``scripts/fetch-tools`` has not been run.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import pytest_asyncio

from ._process import EmulatorProcess
from ._server import EmulatorServer

REPO = pathlib.Path(__file__).resolve().parents[3]
TOOLS_BIN = REPO / ".tools" / "bin"

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def kube_emulator_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    with EmulatorProcess(workdir=tmp_path_factory.mktemp("kube-emulator")) as api:
        yield api


@pytest.fixture
def kubeconfig(kube_emulator_process: EmulatorProcess) -> pathlib.Path:
    return kube_emulator_process.kubeconfig


@pytest.fixture
def kube_env(
    kube_emulator_process: EmulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    for key, value in kube_emulator_process.env.items():
        monkeypatch.setenv(key, value)
    return kube_emulator_process.env


@pytest_asyncio.fixture
async def kube_emulator_server() -> AsyncIterator[EmulatorServer]:
    async with EmulatorServer() as server:
        yield server


def tool_path(name: str) -> pathlib.Path:
    """A tool fetched by ``scripts/fetch-tools`` (kubectl, kubectl-1.33, helm); skip if absent,
    fail under ``CI=true`` (CI must never pass by skipping)."""
    path = TOOLS_BIN / name
    if not os.access(path, os.X_OK):
        message = f"{path} is missing: run scripts/fetch-tools (scripts/test runs it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


@pytest.fixture
def kubectl(kube_emulator_process: EmulatorProcess) -> Kubectl:
    """``kubectl("get", "cm", "-o", "json", input=None, check=True)`` -> CompletedProcess."""
    binary = tool_path("kubectl")
    env = {**os.environ, **kube_emulator_process.env}

    def run(
        *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(binary), *args],
            input=input,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}"
            )
        return result

    return run
