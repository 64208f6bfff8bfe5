"""Fixtures for end-to-end tests: the emulator process, a signing key, the operator process."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hotconf_e2e import KUBECTL, Api, OperatorProcess, make_key
from kube_emulator._process import EmulatorProcess


@dataclass
class Cluster:
    api: Api
    kubeconfig: Path
    key_file: Path
    public_key_pem: str
    workdir: Path

    def operator(self, *extra: str, **options: Any) -> OperatorProcess:
        """A started operator; ``options`` go to :class:`OperatorProcess` (key_file=None with
        key_secret=..., standalone=False, health_port=..., log_name=...)."""
        options.setdefault("key_file", self.key_file)
        return OperatorProcess(
            kubeconfig=self.kubeconfig, workdir=self.workdir, extra=extra, **options
        ).start()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    if not KUBECTL.exists():
        pytest.skip("kubectl missing: run scripts/fetch-tools")
    (tmp_path / "api").mkdir()
    with EmulatorProcess(workdir=tmp_path / "api") as emulator:
        key_file = tmp_path / "signing.pem"
        yield Cluster(
            api=Api(emulator.url),
            kubeconfig=emulator.kubeconfig,
            key_file=key_file,
            public_key_pem=make_key(key_file),
            workdir=tmp_path,
        )


@pytest.fixture
def operator(cluster: Cluster) -> Iterator[OperatorProcess]:
    op = cluster.operator()
    try:
        yield op
    finally:
        code = op.stop()
        assert code == 0, f"operator exited {code}:\n{op.logs()[-4000:]}"
