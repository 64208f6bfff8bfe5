"""Fixtures for end-to-end tests on the real control plane (etcd + kube-apiserver).

Per session: the control plane and one ``helm install`` of the chart (webhook off), whose
ServiceAccount the operator runs as (``chart_release``, from ``hotconf_e2e.fixtures``). Per test:
a namespace, an admin kubeconfig whose context is that namespace (kubectl and helm use it), a
kubeconfig for the chart's ServiceAccount (the operator's), a signing key, and an :class:`Api`
in that namespace.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hotconf_e2e import Api, OperatorProcess, make_key
from hotconf_e2e.chart import ChartRelease
from kube_control_plane import ControlPlane


@dataclass
class Cluster:
    api: Api
    control_plane: ControlPlane
    namespace: str
    kubeconfig: Path  # the admin, in ``namespace``
    operator_kubeconfig: Path  # the chart's ServiceAccount
    release: ChartRelease
    key_file: Path
    public_key_pem: str
    workdir: Path

    def operator(self, *extra: str, **options: Any) -> OperatorProcess:
        """A started operator; ``options`` go to :class:`OperatorProcess` (key_file=None with
        key_secret=..., standalone=False, health_port=..., log_name=..., kubeconfig=...)."""
        options.setdefault("key_file", self.key_file)
        options.setdefault("kubeconfig", self.operator_kubeconfig)
        return OperatorProcess(workdir=self.workdir, extra=extra, **options).start()


@pytest.fixture
def cluster(
    control_plane: ControlPlane, kube_namespace: str, chart_release: ChartRelease, tmp_path: Path
) -> Cluster:
    key_file = tmp_path / "signing.pem"
    return Cluster(
        api=Api(control_plane.admin, kube_namespace),
        control_plane=control_plane,
        namespace=kube_namespace,
        kubeconfig=control_plane.write_kubeconfig(
            tmp_path / "kubeconfig", namespace=kube_namespace
        ),
        operator_kubeconfig=chart_release.operator_kubeconfig(
            tmp_path / "operator.kubeconfig", namespace=kube_namespace
        ),
        release=chart_release,
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
