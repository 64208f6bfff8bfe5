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
from pathlib import Path
from typing import Any

import pytest
from hotconf_e2e import OperatorProcess, configmap_manifest, kubectl, wait_for
from hotconf_e2e.kubelet import KubeletPod, injecting_operator, sidecar_of

from hotconf_wire.envelope import DEFAULT_PORT

pytestmark = pytest.mark.e2e


def test_api_server_calls_the_webhook_and_the_injected_pod_runs(
    cluster: Any, tmp_path: Path
) -> None:
    # The operator makes the serving certificate (kept in the Secret the chart names) and sets
    # the configuration's caBundle itself, as the chart's Deployment tells it to, as the chart's
    # ServiceAccount; nothing of it is rendered.
    with injecting_operator(cluster, tmp_path, name="hotconf-webhook") as operator:
        _injected_pods_run(cluster, operator)


def _injected_pods_run(cluster: Any, operator: OperatorProcess) -> None:
    started: list[KubeletPod] = []
    try:
        kubectl(cluster.kubeconfig, "apply", "-f", "-",
                stdin=configmap_manifest("app", {"value": "one"}))  # fmt: skip
        for i in range(2):
            pod = KubeletPod(api=cluster.api, workdir=cluster.workdir, name=f"injected-{i}",
                             ip=f"127.0.0.{60 + i}", configmap="app")  # fmt: skip
            pod.create_through_webhook()
            assert json.dumps(pod.stored["spec"]).count("hotconf-sidecar") >= 1
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
