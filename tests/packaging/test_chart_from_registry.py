"""The chart is published to an OCI registry and installed from it, the way users do.

Proves, against Debian's registry server on loopback and the real kube-apiserver: ``helm
package`` and ``helm push`` publish the chart as an OCI artifact (the registry lists it under
its version); ``helm show chart`` reads it back; ``helm install`` from ``oci://`` creates the
release with the image the user names; a newer chart version pushed later is what ``helm
upgrade`` installs (the release history says so); ``helm uninstall`` removes the release.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import yaml
from hotconf_e2e.chart import CHART, helm
from kube_control_plane import ControlPlane
from oci_registry import OciRegistry

VERSION = yaml.safe_load((CHART / "Chart.yaml").read_text())["version"]


def publish(registry: OciRegistry, kubeconfig: Path, tmp: Path, version: str) -> str:
    """Package the chart at ``version`` and push it; the ``oci://`` reference to install."""
    out = tmp / version
    out.mkdir()
    helm(kubeconfig, "package", str(CHART), "--version", version, "--destination", str(out))
    [package] = out.glob("hotconf-*.tgz")
    helm(kubeconfig, "push", str(package), f"oci://{registry.host}/charts", "--plain-http")
    return f"oci://{registry.host}/charts/hotconf"


def test_chart_from_the_registry_installs_upgrades_and_uninstalls(
    control_plane: ControlPlane, oci_registry: OciRegistry, kube_namespace: str, tmp_path: Path
) -> None:
    kubeconfig = control_plane.kubeconfig
    bump = f"{VERSION}-rc.{uuid.uuid4().hex[:6]}"  # unique per run: the registry is the session's
    reference = publish(oci_registry, kubeconfig, tmp_path, bump)
    assert "charts/hotconf" in oci_registry.catalog()
    assert bump.replace("+", "_") in oci_registry.tags("charts/hotconf")
    shown = yaml.safe_load(
        helm(kubeconfig, "show", "chart", reference, "--version", bump, "--plain-http")
    )
    assert (shown["name"], shown["version"]) == ("hotconf", bump)

    release = f"hotconf-{uuid.uuid4().hex[:6]}"  # holds the chart name: fullname = release
    image = f"{oci_registry.host}/hotconf"
    helm(
        kubeconfig, "install", release, reference, "--version", bump, "--plain-http",
        "-n", kube_namespace, "--set", f"image.repository={image}", "--set", "image.tag=test",
        "--set", f"peering.name={release}", "--set", "webhook.enabled=false",
    )  # fmt: skip
    deployment = control_plane.admin.request(
        "GET", f"/apis/apps/v1/namespaces/{kube_namespace}/deployments/{release}"
    )
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"{image}:test"

    newer = f"{VERSION}-rc.{uuid.uuid4().hex[:6]}.2"
    publish(oci_registry, kubeconfig, tmp_path, newer)
    helm(
        kubeconfig, "upgrade", release, reference, "--version", newer, "--plain-http",
        "-n", kube_namespace, "--reuse-values",
    )  # fmt: skip
    history = json.loads(helm(kubeconfig, "history", release, "-n", kube_namespace, "-o", "json"))
    assert [h["chart"] for h in history] == [f"hotconf-{bump}", f"hotconf-{newer}"]

    helm(kubeconfig, "uninstall", release, "-n", kube_namespace, "--wait")
    listed = json.loads(helm(kubeconfig, "list", "-n", kube_namespace, "-o", "json"))
    assert release not in [r["name"] for r in listed]
