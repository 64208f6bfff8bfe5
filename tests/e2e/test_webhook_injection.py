"""End to end through the API server's own admission: the chart's webhook injects the sidecar.

Proves: with the chart installed with ``webhook.url`` (the operator runs outside the cluster, as
here), a Pod labelled ``hotconf.dev/inject`` created through the API server is sent by the API
server itself to the operator's webhook, over TLS with the certificate the operator made and the
caBundle it set (neither is rendered by the chart); the patched pod, with its native sidecar (an
init container with ``restartPolicy: Always``), the socket and state volumes, the Downward API env
and ``hotconf.dev/port``, passes the API server's validation and is stored. The harness then runs
what the stored spec says (it plays the kubelet) and the operator rolls the ConfigMap out to it,
and a change after it. A pod without the label is stored untouched, and never reaches the
operator (the chart's objectSelector), not even one that asks with the legacy annotation, which
the operator would inject if it were sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hotconf_e2e import OperatorProcess, configmap_manifest, free_port, kubectl, wait_for
from hotconf_e2e.chart import ChartRelease, helm, install_chart
from hotconf_e2e.kubelet import KubeletPod, sidecar_of
from kube_control_plane import ApiError

from hotconf_wire.envelope import DEFAULT_PORT

pytestmark = pytest.mark.e2e


@pytest.fixture
def webhook_release(cluster: Any) -> Iterator[tuple[ChartRelease, int]]:
    """The chart with its webhook calling https://127.0.0.1:PORT, for this test's namespace only."""
    port = free_port()
    release = install_chart(
        cluster.control_plane,
        release="hotconf-webhook",
        namespace="hotconf-webhook",
        values={
            "webhook.url": f"https://127.0.0.1:{port}/inject-sidecar",
            "webhook.failurePolicy": "Fail",  # a webhook that is not called fails the test
            "webhook.namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name": (
                cluster.namespace
            ),
        },
    )
    try:
        yield release, port
    finally:
        helm(cluster.control_plane.kubeconfig, "uninstall", release.name, "-n", release.namespace)


def test_api_server_calls_the_webhook_and_the_injected_pod_runs(
    cluster: Any, webhook_release: tuple[ChartRelease, int], tmp_path: Path
) -> None:
    release, port = webhook_release
    # The operator makes the serving certificate (kept in the Secret the chart names) and sets
    # the configuration's caBundle itself, as the chart's Deployment tells it to, as the chart's
    # ServiceAccount; nothing of it is rendered.
    operator = OperatorProcess(
        kubeconfig=release.operator_kubeconfig(tmp_path / "op.kubeconfig"),
        key_file=cluster.key_file,
        workdir=cluster.workdir,
        extra=(
            "--webhook-port", str(port),
            "--webhook-cert-secret", f"{release.namespace}/hotconf-webhook-webhook-tls",
            "--webhook-hosts", "127.0.0.1",
            "--webhook-configuration", "hotconf-webhook",
            "--sidecar-image", "registry.example/hotconf:1",
        ),
    ).start()  # fmt: skip
    started: list[KubeletPod] = []
    try:
        kubectl(cluster.kubeconfig, "apply", "-f", "-",
                stdin=configmap_manifest("app", {"value": "one"}))  # fmt: skip
        for i in range(2):
            pod = KubeletPod(api=cluster.api, workdir=cluster.workdir, name=f"injected-{i}",
                             ip=f"127.0.0.{60 + i}", configmap="app")  # fmt: skip
            _create_when_webhook_serves(pod)
            started.append(pod)
        stored = started[0].stored
        sidecar = sidecar_of(stored)
        assert sidecar["image"] == "registry.example/hotconf:1"
        assert stored["metadata"]["annotations"]["hotconf.dev/port"] == str(DEFAULT_PORT)
        volumes = {v["name"] for v in stored["spec"]["volumes"]}
        assert {"hotconf-socket", "hotconf-state"} <= volumes
        env = {e["name"]: e for e in stored["spec"]["containers"][0]["env"]}
        assert env["HOTCONF_SOCKET"]["value"] == "/run/hotconf/hotconf.sock"
        # The sidecar verifies with the public half of the operator's own key.
        sidecar_env = {e["name"]: e.get("value") for e in sidecar["env"]}
        assert sidecar_env["HOTCONF_OPERATOR_PUBLIC_KEY"].strip() == cluster.public_key_pem.strip()

        for pod in started:
            pod.run()
        wait_for("the injected pods run 'one'",
                 lambda: [p.current().get("value") for p in started] == ["one"] * 2)  # fmt: skip
        cluster.api.patch_cm("app", {"data": {"value": "two"}})
        wait_for("the injected pods run 'two'",
                 lambda: [p.current().get("value") for p in started] == ["two"] * 2)  # fmt: skip
        status = wait_for("status", lambda: (s := cluster.api.status_of("app")) and
                          s["applied"] == 2 and s)  # fmt: skip
        assert status["total"] == 2

        # Not labelled: stored as sent, without the API server calling the webhook (the chart's
        # objectSelector), so the legacy annotation alone no longer injects.
        for name, annotations in (("plain", {}), ("annotated", {"hotconf.dev/inject": "true"})):
            stored = cluster.api.create_pod({
                "metadata": {"name": name, "annotations": annotations},
                "spec": {"containers": [{"name": "app", "image": "example/app"}]},
            })  # fmt: skip
            assert not stored["spec"].get("initContainers"), name
        assert operator.metric("hotconf_operator_injections_total") == 2
    finally:
        for pod in started:
            pod.stop()
        code = operator.stop()
    assert code == 0, operator.logs()[-4000:]


def _create_when_webhook_serves(pod: KubeletPod) -> None:
    """Create the pod; while the operator's webhook is still starting, the API server refuses it
    (failurePolicy Fail): retry until it is admitted."""

    def attempt() -> bool:
        try:
            pod.create_object()
        except ApiError as exc:
            if "inject.hotconf.dev" in str(exc):
                return False
            raise
        return True

    wait_for(f"pod {pod.name} admitted through the webhook", attempt, timeout=30, every=0.2)
    assert json.dumps(pod.stored["spec"]).count("hotconf-sidecar") >= 1
