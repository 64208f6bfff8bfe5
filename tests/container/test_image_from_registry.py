"""The image is published to an OCI registry and runs from there, with the chart that names it.

Proves, against Debian's registry server on loopback: ``skopeo copy`` pushes the built image
from local storage; the registry lists it under its tag, and ``skopeo inspect`` reads back its
digest and OCI labels; an image pulled by that digest (after the local copy is gone from the
pull's name) runs both console scripts with the chart's security context; and the chart,
pushed to the same registry and installed from ``oci://`` with ``image.repository`` set to the
registry, makes the operator's Deployment run exactly that image.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml
from hotconf_e2e.chart import CHART, helm
from hotconf_e2e.container import PODMAN, ULIMITS, chart_security_context, security_flags
from kube_control_plane import ControlPlane
from oci_registry import OciRegistry

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]


def skopeo(*args: str) -> str:
    done = subprocess.run(
        ["skopeo", *args], capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, f"skopeo {' '.join(args)}: {done.stderr}{done.stdout}"
    return done.stdout


def test_image_and_chart_from_the_registry(
    image: str,
    oci_registry: OciRegistry,
    control_plane: ControlPlane,
    kube_namespace: str,
    tmp_path: Path,
) -> None:
    tag = image.rsplit(":", 1)[1]
    remote = f"{oci_registry.host}/hotconf"
    skopeo(
        "copy", "--dest-tls-verify=false", f"containers-storage:{image}", f"docker://{remote}:{tag}"
    )
    assert tag in oci_registry.tags("hotconf")
    pushed = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{remote}:{tag}"))
    digest = pushed["Digest"]
    assert digest.startswith("sha256:")
    local = json.loads(subprocess.run([*PODMAN, "image", "inspect", image], capture_output=True,
                                      text=True, timeout=30, check=True).stdout)[0]  # fmt: skip
    assert pushed["Labels"] == local["Labels"]
    assert pushed["Labels"]["org.opencontainers.image.version"]

    by_digest = f"{remote}@{digest}"
    pulled = subprocess.run([*PODMAN, "pull", "--tls-verify=false", by_digest],
                            capture_output=True, text=True, timeout=180, check=False)  # fmt: skip
    assert pulled.returncode == 0, pulled.stderr
    try:
        for command in ("hotconf-operator", "hotconf-sidecar"):
            ran = subprocess.run(
                [*PODMAN, "run", "--rm", "--network", "none", *ULIMITS,
                 *security_flags(chart_security_context()), by_digest, command, "--help"],
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            assert ran.returncode == 0, (command, ran.stderr)
            assert "usage" in ran.stdout.lower(), ran.stdout

        out = tmp_path / "chart"
        helm(control_plane.kubeconfig, "package", str(CHART), "--destination", str(out))
        [package] = out.glob("hotconf-*.tgz")
        helm(control_plane.kubeconfig, "push", str(package),
             f"oci://{oci_registry.host}/charts", "--plain-http")  # fmt: skip
        version = yaml.safe_load((CHART / "Chart.yaml").read_text())["version"]
        release = f"hotconf-{uuid.uuid4().hex[:6]}"
        helm(
            control_plane.kubeconfig, "install", release,
            f"oci://{oci_registry.host}/charts/hotconf", "--version", version, "--plain-http",
            "-n", kube_namespace, "--set", f"image.repository={remote}",
            "--set", f"image.tag={tag}", "--set", f"peering.name={release}",
            "--set", "webhook.enabled=false",
        )  # fmt: skip
        deployment = control_plane.admin.request(
            "GET", f"/apis/apps/v1/namespaces/{kube_namespace}/deployments/{release}"
        )
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        assert container["image"] == f"{remote}:{tag}"
        helm(control_plane.kubeconfig, "uninstall", release, "-n", kube_namespace, "--wait")
    finally:
        subprocess.run([*PODMAN, "rmi", by_digest], capture_output=True, timeout=60, check=False)
