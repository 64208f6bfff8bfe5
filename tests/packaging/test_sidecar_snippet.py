"""The hand-written sidecar in charts/hotconf/README.md ("The sidecar without the webhook") is a
valid Deployment for Kubernetes 1.29 and the newest version known, in strict mode; its sidecar is
a native one (init container with restartPolicy: Always) running `hotconf-sidecar` with only the
sidecar contract's settings (pod identity from the Downward API, the operator's public key), the
socket and state directories on emptyDir volumes, restricted security; and the app container
gets HOTCONF_SOCKET pointing into the shared socket volume."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from hotconf_wire.envelope import DEFAULT_PORT

README = Path(__file__).resolve().parents[2] / "charts" / "hotconf" / "README.md"
SIDECAR_SETTINGS = {
    "HOTCONF_POD_NAMESPACE",
    "HOTCONF_POD_NAME",
    "HOTCONF_POD_UID",
    "HOTCONF_LISTEN",
    "HOTCONF_SOCKET",
    "HOTCONF_SOCKET_MODE",
    "HOTCONF_STATE_DIR",
    "HOTCONF_OPERATOR_PUBLIC_KEY_FILE",
    "HOTCONF_OPERATOR_PUBLIC_KEY",
    "HOTCONF_ACK_TIMEOUT",
    "HOTCONF_FILES_DIR",
    "HOTCONF_NOTIFY_URL",
    "HOTCONF_NOTIFY_SIGNAL",
    "HOTCONF_NOTIFY_PID_FILE",
}
DOWNWARD = {
    "HOTCONF_POD_NAMESPACE": "metadata.namespace",
    "HOTCONF_POD_NAME": "metadata.name",
    "HOTCONF_POD_UID": "metadata.uid",
}


def snippet() -> dict[str, Any]:
    text = README.read_text()
    match = re.search(r"<!-- sidecar-snippet[^>]*-->\s*```yaml\n(.*?)```", text, re.S)
    assert match, "the sidecar snippet (marked <!-- sidecar-snippet -->) is missing"
    loaded: dict[str, Any] = yaml.safe_load(match.group(1))
    return loaded


def pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = snippet()["spec"]["template"]["spec"]
    return spec


def sidecar() -> dict[str, Any]:
    (container,) = pod_spec()["initContainers"]
    return dict(container)


def mounts(container: dict[str, Any]) -> dict[str, str]:
    return {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}


@pytest.mark.parametrize("version", ["1.29.0", kubernetes_validate.latest_version()])
def test_snippet_is_a_valid_deployment(version: str) -> None:
    kubernetes_validate.validate(snippet(), version, strict=True)


def test_sidecar_is_native_and_runs_hotconf_sidecar() -> None:
    container = sidecar()
    assert container["restartPolicy"] == "Always"
    assert container["command"] == ["hotconf-sidecar"]
    assert {p["containerPort"] for p in container["ports"]} == {DEFAULT_PORT}
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]


def test_sidecar_settings_are_the_contract() -> None:
    env = {item["name"]: item for item in sidecar()["env"]}
    assert set(env) <= SIDECAR_SETTINGS, set(env) - SIDECAR_SETTINGS
    for name, field in DOWNWARD.items():
        assert env[name]["valueFrom"]["fieldRef"]["fieldPath"] == field
    assert "HOTCONF_OPERATOR_PUBLIC_KEY" in env


def test_socket_and_state_live_on_empty_dirs_shared_with_the_app() -> None:
    spec = pod_spec()
    volumes = {v["name"]: v for v in spec["volumes"]}
    side = mounts(sidecar())
    socket_dir, state_dir = "/run/hotconf", "/var/lib/hotconf"
    assert "emptyDir" in volumes[side[socket_dir]] and "emptyDir" in volumes[side[state_dir]]
    (app,) = spec["containers"]
    app_env = {item["name"]: item.get("value") for item in app["env"]}
    socket = app_env["HOTCONF_SOCKET"]
    assert socket.startswith(socket_dir + "/")
    assert mounts(app)[socket_dir] == side[socket_dir]
    sidecar_env = {item["name"]: item.get("value") for item in sidecar()["env"]}
    assert sidecar_env.get("HOTCONF_SOCKET", "/run/hotconf/hotconf.sock") == socket
    assert state_dir not in mounts(app), "the app has no business in the sidecar's state"


def test_snippet_runs_restricted() -> None:
    spec = pod_spec()
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in spec["initContainers"] + spec["containers"]:
        sc = container["securityContext"]
        assert isinstance(sc.get("runAsUser", pod.get("runAsUser")), int)
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}


def test_snippet_pod_follows_a_configmap() -> None:
    metadata = snippet()["spec"]["template"]["metadata"]
    assert metadata["annotations"]["hotconf.dev/configmaps"]
    assert "hotconf.dev/inject" not in metadata["annotations"], "the opt-in is a label"
    # The operator's pod watch selects the label; a webhook leaves a pod that has the sidecar.
    assert metadata["labels"]["hotconf.dev/inject"] == "true"
