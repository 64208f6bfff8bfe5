"""End to end: applications in other languages get hot reload through the injected sidecar alone.

Proves, through the real API server calling the operator's webhook (the chart installed with
``webhook.url``) and the harness running what the stored spec says, that the adapter annotations
work for programs that do not speak hotconf's protocol:

- ``hotconf.dev/files``: a POSIX shell script reads the ConfigMap's key from the emptyDir the
  sidecar writes (mounted read-only in the application container, read-write in the sidecar),
  first the value the pod starts with, then each change, and the status counts the pod applied;
- ``hotconf.dev/notify-url``: a Node.js server is POSTed each revision, reads the files and
  answers 204 (ACK); its 422 for a value it refuses is the pod's NACK, with its reason in the
  ConfigMap's status, and a restarted operator still counts the pod rejected (from the
  sidecar's state);
- ``hotconf.dev/signal`` with ``hotconf.dev/signal-process``: a shell script with ``trap ... HUP``
  is signalled by name after each swap of the files; the stored pod shares its process namespace
  and runs the sidecar as the application's user (the harness refuses to run a signalling sidecar
  without ``shareProcessNamespace``);
- a pod with every adapter, as injected, is admitted by the API server's PodSecurity admission
  enforcing the restricted profile (which refuses a pod that does not comply).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hotconf_e2e import OperatorProcess, configmap_manifest, free_port, kubectl, wait_for
from hotconf_e2e.kubelet import KubeletPod, injecting_operator, sidecar_of
from kube_control_plane import ApiError

pytestmark = pytest.mark.e2e

APPS = Path(__file__).parent / "apps"


@pytest.fixture
def injecting(cluster: Any, tmp_path: Path) -> Iterator[OperatorProcess]:
    """The chart's webhook for this test's namespace, calling an operator that injects."""
    with injecting_operator(cluster, tmp_path, name="hotconf-lang") as operator:
        yield operator


def _admitted(pod: KubeletPod) -> KubeletPod:
    """Create the pod through the webhook and run it."""
    pod.create_through_webhook()
    return pod.run()


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _status(cluster: Any, **expected: Any) -> dict[str, Any]:
    def matches() -> dict[str, Any] | None:
        status = cluster.api.status_of("app")
        if status and all(status.get(k) == v for k, v in expected.items()):
            return dict(status)
        return None

    found: dict[str, Any] = wait_for(f"the status says {expected}", matches)
    return found


def _mount(container: dict[str, Any], volume: str) -> dict[str, Any]:
    [mount] = [m for m in container.get("volumeMounts") or [] if m["name"] == volume]
    return dict(mount)


def test_a_shell_script_reads_the_config_from_files(
    cluster: Any, injecting: OperatorProcess, tmp_path: Path
) -> None:
    kubectl(cluster.kubeconfig, "apply", "-f", "-",
            stdin=configmap_manifest("app", {"value": "one"}))  # fmt: skip
    out = tmp_path / "applied"
    pod = KubeletPod(
        api=cluster.api, workdir=cluster.workdir, name="files", ip="127.0.0.71", configmap="app",
        annotations={"hotconf.dev/files": "/etc/hotconf"},
        app=["/bin/sh", str(APPS / "read_files.sh")],
        app_env={"CONFIGMAP": "app", "OUT": str(out)}, app_ready=Path(f"{out}.ready"),
    )  # fmt: skip
    try:
        _admitted(pod)
        app = pod.stored["spec"]["containers"][0]
        assert _mount(app, "hotconf-files") == {
            "name": "hotconf-files", "mountPath": "/etc/hotconf", "readOnly": True}  # fmt: skip
        assert not _mount(sidecar_of(pod.stored), "hotconf-files").get("readOnly")
        wait_for("the script read 'one'", lambda: _lines(out) == ["one"])
        _status(cluster, applied=1, total=1)

        cluster.api.patch_cm("app", {"data": {"value": "two"}})
        wait_for("the script read 'two'", lambda: _lines(out) == ["one", "two"])
        status = _status(cluster, applied=1, total=1, phase="complete")
        # What the application container sees at /etc/hotconf/app/value.
        assert (pod.local("/etc/hotconf") / "app" / "value").read_text() == "two"
        assert status["revision"] == pod.state()["configmaps"][0]["revision"]
    finally:
        pod.stop()


def test_a_node_server_is_called_at_the_notify_url_and_its_refusal_is_a_nack(
    cluster: Any, injecting: OperatorProcess, tmp_path: Path
) -> None:
    node = shutil.which("node")
    if node is None:  # scripts/fetch-tools installs it (Debian's nodejs) where it is missing
        message = "node is not installed: run scripts/fetch-tools (scripts/test runs it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    kubectl(cluster.kubeconfig, "apply", "-f", "-",
            stdin=configmap_manifest("app", {"value": "one"}))  # fmt: skip
    out, ip = tmp_path / "applied", "127.0.0.72"
    port = free_port(ip)
    pod = KubeletPod(
        api=cluster.api, workdir=cluster.workdir, name="notified", ip=ip, configmap="app",
        annotations={"hotconf.dev/files": "/etc/hotconf",
                     "hotconf.dev/notify-url": f"http://localhost:{port}/-/reload"},
        app=[node, str(APPS / "notify_server.mjs")],
        # The pod's loopback is its own 127.0.0.x here (see hotconf_e2e.kubelet).
        app_env={"OUT": str(out), "HOST": ip, "PORT": str(port)},
        app_ready=Path(f"{out}.ready"),
    )  # fmt: skip
    try:
        _admitted(pod)
        env = {e["name"]: e.get("value") for e in sidecar_of(pod.stored)["env"]}
        assert env["HOTCONF_NOTIFY_URL"] == f"http://localhost:{port}/-/reload"
        one = _status(cluster, applied=1, total=1)["revision"]
        assert _lines(out) == [f"{one} one"]

        cluster.api.patch_cm("app", {"data": {"value": "two"}})
        two = wait_for(
            "a new revision applied",
            lambda: (
                (s := cluster.api.status_of("app"))
                and s["revision"] != one
                and s["applied"] == 1
                and s["revision"]
            ),
        )
        assert _lines(out) == [f"{one} one", f"{two} two"]

        cluster.api.patch_cm("app", {"data": {"value": "bad"}})
        status = _status(cluster, rejected=1, total=1)
        assert status["pod"] == "notified", status
        assert "answered 422" in status["message"], status
        assert _lines(out) == [f"{one} one", f"{two} two"]  # the application kept "two"

        # A restarted operator learns the verdict from the sidecar's state, not from a new call.
        assert injecting.stop() == 0, injecting.logs()[-4000:]
        injecting.start()
        wait_for(
            "the restarted operator counts the pod rejected",
            lambda: injecting.metric("hotconf_operator_pods", state="rejected") == 1,
        )
        status = _status(cluster, rejected=1, total=1)
        assert "answered 422" in status["message"], status
        assert _lines(out) == [f"{one} one", f"{two} two"]
    finally:
        pod.stop()


def test_a_shell_script_with_a_trap_is_signalled_by_name(
    cluster: Any, injecting: OperatorProcess, tmp_path: Path
) -> None:
    # The harness's pods are processes of one host: a name no other process has.
    name = f"hcreload{uuid.uuid4().hex[:6]}"
    script = tmp_path / name
    shutil.copy(APPS / "reload_on_hup.sh", script)
    script.chmod(0o755)
    kubectl(cluster.kubeconfig, "apply", "-f", "-",
            stdin=configmap_manifest("app", {"value": "one"}))  # fmt: skip
    out = tmp_path / "applied"
    pod = KubeletPod(
        api=cluster.api, workdir=cluster.workdir, name="signalled", ip="127.0.0.73",
        configmap="app",
        annotations={"hotconf.dev/files": "/etc/hotconf", "hotconf.dev/signal": "SIGHUP",
                     "hotconf.dev/signal-process": name},
        pod_spec={"securityContext": {"fsGroup": 65532, "runAsUser": 1000, "runAsGroup": 1000}},
        app=[str(script)], app_env={"CONFIGMAP": "app", "OUT": str(out)},
        app_ready=Path(f"{out}.ready"),
    )  # fmt: skip
    try:
        _admitted(pod)
        spec = pod.stored["spec"]
        assert spec["shareProcessNamespace"] is True
        sidecar = sidecar_of(pod.stored)
        # The same user as the application: the only way to signal it without CAP_KILL.
        assert sidecar["securityContext"]["runAsUser"] == 1000
        assert sidecar["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        wait_for("the script reloaded 'one' on SIGHUP", lambda: _lines(out) == ["HUP one"])
        _status(cluster, applied=1, total=1)

        cluster.api.patch_cm("app", {"data": {"value": "two"}})
        wait_for("the script reloaded 'two'", lambda: _lines(out) == ["HUP one", "HUP two"])
        status = _status(cluster, applied=1, total=1, phase="complete")
        assert status["revision"] == pod.state()["configmaps"][0]["revision"]
    finally:
        pod.stop()


RESTRICTED_APP = {
    "name": "app",
    "image": "example/app",
    "securityContext": {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    },
}


def test_a_pod_with_every_adapter_passes_the_restricted_pod_security_profile(
    cluster: Any, injecting: OperatorProcess
) -> None:
    # The API server's PodSecurity admission runs after the mutating webhooks: it judges the
    # pod as injected, shareProcessNamespace and the sidecar's user included.
    kubectl(cluster.kubeconfig, "label", "namespace", cluster.namespace,
            "pod-security.kubernetes.io/enforce=restricted")  # fmt: skip
    pod = KubeletPod(
        api=cluster.api, workdir=cluster.workdir, name="restricted", ip="127.0.0.74",
        configmap="app",
        annotations={"hotconf.dev/files": "/etc/hotconf",
                     "hotconf.dev/notify-url": "http://localhost:8080/-/reload",
                     "hotconf.dev/signal": "SIGHUP", "hotconf.dev/signal-process": "my-server"},
        pod_spec={"containers": [RESTRICTED_APP],
                  "securityContext": {"runAsUser": 1000, "fsGroup": 1000}},
    )  # fmt: skip
    try:
        pod.create_through_webhook()  # admitted is what this test is about; it is not run
        stored = pod.stored
        assert stored["spec"]["shareProcessNamespace"] is True
        assert sidecar_of(stored)["securityContext"]["runAsUser"] == 1000
        # The same pod without a securityContext on the application is refused: the profile
        # is enforced here, so the pod above passed it rather than slipped by.
        unsafe = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "unsafe"},
                  "spec": {"containers": [{"name": "app", "image": "example/app"}]}}  # fmt: skip
        with pytest.raises(ApiError, match="restricted"):
            cluster.api.create_pod(unsafe)
    finally:
        pod.stop()
