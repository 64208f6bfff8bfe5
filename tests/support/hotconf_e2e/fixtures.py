"""Pytest fixtures shared by every test that runs hotconf on the control plane; loaded by
``tests/conftest.py``.

- ``chart_release``: ``helm install hotconf-e2e charts/hotconf -n hotconf-system`` with the
  webhook off, once per session: the operator processes of the tests run as its ServiceAccount
  (not release ``hotconf``: the chart tests render and dry-run that name, and its cluster-scoped
  objects would belong to this release);
- ``chart_release_ha``: the chart as ``ci/ha-values.yaml`` installs it (release ``hotconf-ha``):
  replicas peering through the ClusterKopfPeering ``hotconf`` the chart creates.
"""

from __future__ import annotations

import pytest
from kube_control_plane import ControlPlane

from hotconf_e2e.chart import CHART, ChartRelease, install_chart


@pytest.fixture(scope="session")
def chart_release(control_plane: ControlPlane) -> ChartRelease:
    return install_chart(control_plane, release="hotconf-e2e", values={"webhook.enabled": "false"})


@pytest.fixture(scope="session")
def chart_release_ha(control_plane: ControlPlane) -> ChartRelease:
    return install_chart(
        control_plane,
        release="hotconf-ha",
        namespace="hotconf-ha",
        values_files=[CHART / "ci" / "ha-values.yaml"],
        values={"webhook.enabled": "false"},
    )
