"""An Argo CD-style flow on the real API server: render, apply, render, apply, restart (issue 11).

Argo CD renders the chart with `helm template` on every sync and applies what it printed; it
never runs `helm install`, so `lookup` finds nothing and anything a template generates is new
each time. Proves: the chart rendered twice is byte-identical; `kubectl apply` of it, with the
operator run as the ServiceAccount it creates and with the key, certificate and configuration
settings its Deployment gives, makes the operator create the signing key and the webhook
certificate Secrets and set the configuration's caBundle; pods created through the API server's
admission get the sidecar and the config; applying the second render again leaves the caBundle
in place; after an operator restart the same key signs, so the existing pods apply the next
change (no `bad_signature` in any sidecar's log) and a pod created after it is admitted through
the webhook with the same caBundle (failurePolicy Fail would refuse it otherwise).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hotconf_e2e import OperatorProcess, configmap_manifest, free_port, kubectl, wait_for
from hotconf_e2e.chart import CHART, HELM, ChartRelease
from hotconf_e2e.kubelet import KubeletPod
from kube_control_plane import ApiError

pytestmark = pytest.mark.e2e

RELEASE = "gitops"
NAMESPACE = "hotconf-gitops"
FULLNAME = "gitops-hotconf"


def render(cluster: Any, port: int) -> str:
    """`helm template`, as Argo CD runs it: no cluster access, so no `lookup`."""
    import subprocess

    values = {
        "webhook.url": f"https://127.0.0.1:{port}/inject-sidecar",
        "webhook.failurePolicy": "Fail",  # a webhook that is not trusted fails the test
        "webhook.namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name": cluster.namespace,
        "sidecar.image.repository": "registry.example/hotconf",
    }
    args = [str(HELM), "template", RELEASE, str(CHART), "-n", NAMESPACE, "--skip-tests"]
    for key, value in values.items():
        args += ["--set", f"{key}={value}"]
    return subprocess.run(args, capture_output=True, text=True, check=True, timeout=60).stdout


def operator_flags(rendered: str) -> list[str]:
    """The key, certificate and webhook settings the rendered Deployment gives the operator."""
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    flags = []
    for name in ("WEBHOOK_CERT_SECRET", "WEBHOOK_HOSTS", "WEBHOOK_CONFIGURATION", "SIDECAR_IMAGE"):
        flags += ["--" + name.lower().replace("_", "-"), env[f"HOTCONF_{name}"]]
    return ["--signing-key-secret", env["HOTCONF_SIGNING_KEY_SECRET"], *flags]


def ca_bundle(cluster: Any) -> str | None:
    configuration = cluster.api.request(
        "GET", f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{FULLNAME}"
    )
    bundle = configuration["webhooks"][0]["clientConfig"].get("caBundle")
    return None if bundle is None else str(bundle)


def create_through_webhook(pod: KubeletPod) -> None:
    def attempt() -> bool:
        try:
            pod.create_object()
        except ApiError as exc:
            if "inject.hotconf.dev" in str(exc):  # the webhook is not served or not trusted yet
                return False
            raise
        return True

    wait_for(f"pod {pod.name} admitted through the webhook", attempt, timeout=40, every=0.3)
    assert "hotconf-sidecar" in json.dumps(pod.stored["spec"])


def test_render_apply_render_apply_restart_keeps_key_and_ca(cluster: Any, tmp_path: Path) -> None:
    port = free_port()
    first = render(cluster, port)
    docs = [d for d in yaml.safe_load_all(first) if d]
    assert not [d for d in docs if d["kind"] == "Secret"]
    manifests = tmp_path / "rendered.yaml"
    manifests.write_text(first)
    try:
        cluster.control_plane.create_namespace(NAMESPACE)
    except ApiError as exc:
        if exc.status != 409:
            raise
    kubectl(cluster.kubeconfig, "apply", "-n", NAMESPACE, "-f", str(manifests))
    release = ChartRelease(cluster.control_plane, RELEASE, NAMESPACE, FULLNAME)
    flags = operator_flags(first)
    key_secret = flags[1]

    def start_operator(log: str) -> OperatorProcess:
        extra = ("--webhook-port", str(port), *flags[2:])
        return OperatorProcess(
            kubeconfig=release.operator_kubeconfig(tmp_path / f"{log}.kubeconfig"),
            key_file=None, key_secret=key_secret, workdir=tmp_path, extra=extra,
            log_name=f"{log}.log",
        ).start()  # fmt: skip

    operator = start_operator("operator-1")
    pods: list[KubeletPod] = []
    try:
        kubectl(cluster.kubeconfig, "apply", "-f", "-",
                stdin=configmap_manifest("app", {"value": "one"}))  # fmt: skip
        for i in range(2):
            pod = KubeletPod(api=cluster.api, workdir=cluster.workdir, name=f"synced-{i}",
                             ip=f"127.0.0.{70 + i}", configmap="app")  # fmt: skip
            create_through_webhook(pod)
            pods.append(pod)
            pod.run()
        wait_for("pods run 'one'", lambda: [p.current().get("value") for p in pods] == ["one"] * 2)
        tls = cluster.api.request(
            "GET", f"/api/v1/namespaces/{NAMESPACE}/secrets/{FULLNAME}-webhook-tls"
        )
        assert ca_bundle(cluster) == tls["data"]["ca.crt"]

        # The next sync: render again (the same bytes), apply again.
        second = render(cluster, port)
        assert second == first, "two renders differ"
        kubectl(cluster.kubeconfig, "apply", "-n", NAMESPACE, "-f", str(manifests))
        assert ca_bundle(cluster) == tls["data"]["ca.crt"], "the apply removed the caBundle"

        assert operator.stop() == 0, operator.logs()[-3000:]
        operator = start_operator("operator-2")
        cluster.api.patch_cm("app", {"data": {"value": "two"}})
        wait_for("after the restart, the existing pods run 'two'",
                 lambda: [p.current().get("value") for p in pods] == ["two"] * 2)  # fmt: skip
        late = KubeletPod(api=cluster.api, workdir=cluster.workdir, name="synced-late",
                          ip="127.0.0.72", configmap="app")  # fmt: skip
        create_through_webhook(late)
        pods.append(late)
        late.run()
        wait_for("the late pod runs 'two'", lambda: late.current().get("value") == "two")
        for pod in pods:
            log = (pod.dir / "sidecar.log").read_text(errors="replace")
            assert "bad_signature" not in log, f"{pod.name}: {log[-2000:]}"
        key = cluster.api.request(
            "GET", f"/api/v1/namespaces/{NAMESPACE}/secrets/{FULLNAME}-signing-key"
        )
        assert "app.kubernetes.io/instance" not in key["metadata"].get("labels", {})
        assert base64.b64decode(key["data"]["private.pem"]).startswith(b"-----BEGIN PRIVATE KEY")
    finally:
        for pod in pods:
            pod.stop()
        code = operator.stop()
        kubectl(cluster.kubeconfig, "delete", "-n", NAMESPACE, "-f", str(manifests),
                "--ignore-not-found")  # fmt: skip
    assert code == 0, operator.logs()[-4000:]
