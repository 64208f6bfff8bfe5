"""The real chart installed with helm into the test control plane, and its operator identity.

:func:`install_chart` runs ``helm install`` of ``charts/hotconf`` as a user would (admin
kubeconfig); :class:`ChartRelease` then names the ServiceAccount the chart made, and
:meth:`ChartRelease.operator_kubeconfig` writes a kubeconfig that authenticates as it with a
TokenRequest token, so an operator process of the test has exactly the rights the chart grants.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kube_control_plane import ControlPlane

__all__ = ["CHART", "HELM", "ChartRelease", "helm", "install_chart"]

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "hotconf"
HELM = REPO / ".tools" / "bin" / "helm"


def helm(kubeconfig: Path, *args: str, timeout: float = 120) -> str:
    """Run helm 4 against ``kubeconfig``; a failure raises with helm's own message."""
    result = subprocess.run(
        [str(HELM), "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}{result.stdout}")
    return result.stdout


@dataclass(frozen=True)
class ChartRelease:
    """One installed release of the chart."""

    control_plane: ControlPlane
    name: str
    namespace: str
    service_account: str

    @property
    def username(self) -> str:
        """The user the API server sees for tokens of this ServiceAccount (audit log, RBAC)."""
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"

    def token(self, *, seconds: int = 3600, bound_secret: str | None = None) -> str:
        return self.control_plane.create_token(
            self.namespace, self.service_account, seconds=seconds, bound_secret=bound_secret
        )

    def operator_kubeconfig(
        self, path: Path, *, namespace: str = "default", token_file: Path | None = None
    ) -> Path:
        """A kubeconfig for the chart's ServiceAccount: a fresh token inline, or ``tokenFile``
        pointing at ``token_file`` (rotated by whoever writes that file)."""
        user = {"tokenFile": str(token_file)} if token_file else {"token": self.token()}
        return self.control_plane.write_kubeconfig(path, namespace=namespace, user=user)


def install_chart(
    control_plane: ControlPlane,
    *,
    release: str = "hotconf",
    namespace: str = "hotconf-system",
    values: Mapping[str, str] | None = None,
    values_files: Sequence[Path] = (),
) -> ChartRelease:
    """``helm install RELEASE charts/hotconf -n NAMESPACE --create-namespace --set ...``."""
    args = ["install", release, str(CHART), "-n", namespace, "--create-namespace"]
    for path in values_files:
        args += ["-f", str(path)]
    for key, value in (values or {}).items():
        args += ["--set", f"{key}={value}"]
    helm(control_plane.kubeconfig, *args)
    accounts = control_plane.admin.request(
        "GET",
        f"/api/v1/namespaces/{namespace}/serviceaccounts"
        f"?labelSelector=app.kubernetes.io/instance%3D{release}",
    )["items"]
    if len(accounts) != 1:
        names = [a["metadata"]["name"] for a in accounts]
        raise AssertionError(f"release {release}: expected one ServiceAccount, got {names}")
    return ChartRelease(
        control_plane=control_plane,
        name=release,
        namespace=namespace,
        service_account=accounts[0]["metadata"]["name"],
    )
