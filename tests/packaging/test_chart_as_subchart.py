"""The chart composes: an umbrella chart that depends on it (``file://`` repository, ``helm
dependency build``) renders and installs on the real API server with empty values, with values
under ``hotconf:`` and with a ``global:`` value, which Helm passes to every subchart and which the
schema must therefore accept at its root (and only there: other unknown keys stay errors)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml
from hotconf_e2e.chart import CHART, helm
from kube_control_plane import ControlPlane


def umbrella(directory: Path, kubeconfig: Path, values: dict[str, object]) -> Path:
    """An umbrella chart in ``directory`` with hotconf as its one dependency, built."""
    directory.mkdir()
    chart = {
        "apiVersion": "v2",
        "name": "platform",
        "version": "0.0.1",
        "dependencies": [{"name": "hotconf", "version": "*", "repository": f"file://{CHART}"}],
    }
    (directory / "Chart.yaml").write_text(yaml.safe_dump(chart))
    (directory / "values.yaml").write_text(yaml.safe_dump(values))
    helm(kubeconfig, "dependency", "build", str(directory))
    assert list((directory / "charts").glob("hotconf-*.tgz"))
    return directory


SUBCHART_VALUES = [
    pytest.param({}, id="empty"),
    pytest.param({"hotconf": {"logLevel": "debug", "watchNamespaces": []}}, id="hotconf-values"),
    pytest.param({"global": {"imageRegistry": "registry.example.com"}}, id="global"),
]


@pytest.mark.parametrize("values", SUBCHART_VALUES)
def test_umbrella_chart_renders_and_installs(
    control_plane: ControlPlane, kube_namespace: str, tmp_path: Path, values: dict[str, object]
) -> None:
    path = umbrella(tmp_path / "platform", control_plane.kubeconfig, values)
    release = f"u-{uuid.uuid4().hex[:6]}"
    rendered = helm(control_plane.kubeconfig, "template", release, str(path), "-n", kube_namespace)
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]
           ["containers"][0]["env"]}  # fmt: skip
    expected = values.get("hotconf", {}).get("logLevel", "info")  # type: ignore[attr-defined]
    assert env["HOTCONF_LOG_LEVEL"] == expected

    helm(control_plane.kubeconfig, "install", release, str(path), "-n", kube_namespace,
         "--set", f"hotconf.peering.name={release}")  # fmt: skip
    stored = control_plane.admin.request(
        "GET", f"/apis/apps/v1/namespaces/{kube_namespace}/deployments/{release}-hotconf"
    )
    assert stored["metadata"]["labels"]["app.kubernetes.io/instance"] == release
    helm(control_plane.kubeconfig, "uninstall", release, "-n", kube_namespace, "--wait")


def test_the_subchart_still_refuses_unknown_keys(
    chart, control_plane: ControlPlane, tmp_path: Path
) -> None:
    path = umbrella(tmp_path / "platform", control_plane.kubeconfig, {"hotconf": {"bogus": 1}})
    result = chart.run("template", "u", str(path))
    assert result.returncode != 0
    assert "additional properties 'bogus' not allowed" in result.stderr
