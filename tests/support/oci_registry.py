"""An OCI registry on loopback for the tests: Debian's ``docker-registry`` (distribution 2.8).

:class:`OciRegistry` runs the registry server as a child process on ``127.0.0.1`` with a free
port and its storage in a temporary directory, plain HTTP (a registry on loopback, as a user's
``localhost:5000`` is; helm and skopeo are told so with ``--plain-http`` and
``--dest-tls-verify=false``). The session fixture ``oci_registry`` (``pytest_plugin`` below)
starts one for the tests that publish and install from it. Under ``CI=true`` a missing server
fails the test; elsewhere it skips with the command that installs it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["OciRegistry", "oci_registry"]

SERVER = "docker-registry"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OciRegistry:
    """One registry server process; ``host`` is what goes in ``oci://`` and image names."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = _free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.log = workdir / "registry.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> OciRegistry:
        config = self.workdir / "config.yml"
        storage = self.workdir / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        # JSON is YAML: the registry reads this as its config file.
        config.write_text(
            json.dumps(
                {
                    "version": 0.1,
                    "log": {"level": "info", "accesslog": {"disabled": True}},
                    "storage": {"filesystem": {"rootdirectory": str(storage)}},
                    "http": {"addr": self.host},
                }
            )
        )
        with self.log.open("ab") as out:
            self._proc = subprocess.Popen(
                [SERVER, "serve", str(config)],
                stdout=out,
                stderr=out,
                env={**os.environ, "HOTCONF_TEST_SHARED_CHILD": "1"},
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise AssertionError(f"{SERVER} exited {self._proc.returncode}: {self.logs()}")
            try:
                with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=2) as reply:
                    if reply.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise AssertionError(f"{SERVER} not ready in {timeout}s: {self.logs()}")

    def catalog(self) -> list[str]:
        """The repositories the registry holds (``GET /v2/_catalog``)."""
        with urllib.request.urlopen(f"http://{self.host}/v2/_catalog", timeout=5) as reply:
            return list(json.load(reply)["repositories"])

    def tags(self, repository: str) -> list[str]:
        with urllib.request.urlopen(
            f"http://{self.host}/v2/{repository}/tags/list", timeout=5
        ) as reply:
            return list(json.load(reply)["tags"] or [])

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def stop(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


@pytest.fixture(scope="session")
def oci_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OciRegistry]:
    if shutil.which(SERVER) is None:
        message = f"{SERVER} is missing: run scripts/fetch-tools (scripts/test runs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    registry = OciRegistry(tmp_path_factory.mktemp("oci-registry")).start()
    try:
        yield registry
    finally:
        registry.stop()
