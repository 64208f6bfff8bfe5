"""Fixtures for the tests that run hotconf's image (podman, runc) on the test control plane.

- ``image``: ``scripts/build-image``, once per session (cached by its inputs: an unchanged tree
  is not built again); without podman the tests are skipped locally and fail under ``CI=true``;
- ``cluster``: a namespace of the session's control plane, a kubeconfig of the chart's
  ServiceAccount (the operator's identity) and a signing key, as in ``tests/e2e``;
- containers left behind by a failed test are removed at the end of the session.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hotconf_e2e import Api, make_key
from hotconf_e2e.chart import ChartRelease
from hotconf_e2e.container import build_image, remove_test_containers
from kube_control_plane import ControlPlane


def require_podman() -> None:
    missing = [tool for tool in ("podman", "runc") if shutil.which(tool) is None]
    if not missing and os.geteuid() == 0:
        return
    reason = (
        f"{', '.join(missing)} not found: run scripts/fetch-tools"
        if missing
        else "the image tests run podman as root"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}: CI must run the image tests", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def image() -> Iterator[str]:
    require_podman()
    try:
        yield build_image()
    finally:
        remove_test_containers()


@dataclass
class Cluster:
    api: Api
    namespace: str
    operator_kubeconfig: Path  # the chart's ServiceAccount, in ``namespace``
    key_file: Path
    public_key_pem: str
    workdir: Path


@pytest.fixture
def cluster(
    control_plane: ControlPlane, kube_namespace: str, chart_release: ChartRelease, tmp_path: Path
) -> Cluster:
    key_file = tmp_path / "signing.pem"
    return Cluster(
        api=Api(control_plane.admin, kube_namespace),
        namespace=kube_namespace,
        operator_kubeconfig=chart_release.operator_kubeconfig(
            tmp_path / "operator.kubeconfig", namespace=kube_namespace
        ),
        key_file=key_file,
        public_key_pem=make_key(key_file),
        workdir=tmp_path,
    )
