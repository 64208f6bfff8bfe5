"""End to end through restarts of the real control plane, with the real watch semantics.

Proves: when kube-apiserver restarts while etcd keeps the data, the operator's watches end, it
reconnects from the resourceVersion it last saw, which the new API server no longer holds in its
watch cache (410 Gone: "too old resource version"), relists and carries on: a change made right
after the API server is back reaches the worker, with one application restart, and the operator
never exits. The same when etcd restarts too (the API server loses its storage for a while).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hotconf_e2e import configmap_manifest, kubectl, pods, wait_for

pytestmark = pytest.mark.e2e


def value(pod: Any) -> Any:
    return (pod.current() or {}).get("value")


def test_api_server_restart_then_etcd_restart(cluster: Any) -> None:
    cp = cluster.control_plane
    kubectl(cluster.kubeconfig, "apply", "-f", "-",
            stdin=configmap_manifest("app", {"value": "one"}))  # fmt: skip
    # No periodic reconcile: only a re-established watch can bring the changes.
    operator = cluster.operator("--reconcile-interval", "3600", "--log-level", "debug")
    try:
        with pods(cluster.api, cluster.workdir, 1, configmap="app",
                  public_key_pem=cluster.public_key_pem) as [pod]:  # fmt: skip
            wait_for("first config", lambda: value(pod) == "one")
            # Other objects change meanwhile, so the operator's last resourceVersion for
            # ConfigMaps falls behind etcd's: the restarted API server cannot resume it.
            for i in range(5):
                cluster.api.request("POST", f"/api/v1/namespaces/{cluster.namespace}/secrets",
                                    {"metadata": {"name": f"noise-{i}"}})  # fmt: skip
            with cp.apiserver_down():
                time.sleep(2)
            cluster.api.patch_cm("app", {"data": {"value": "two"}})
            wait_for("the change after the API server restart",
                     lambda: value(pod) == "two", timeout=60)  # fmt: skip
            assert pod.current()["generation"] == 2
            assert operator.proc is not None and operator.proc.poll() is None
            # kopf saw the API server's 410 Gone for its old resourceVersion and relisted.
            assert "Restarting the watch-stream for configmaps" in operator.logs()

            cp.stop_apiserver()
            cp.stop_etcd()
            time.sleep(1)
            cp.start_etcd()
            cp.start_apiserver()
            kubectl(cluster.kubeconfig, "patch", "configmap", "app", "--type=merge",
                    "-p", json.dumps({"data": {"value": "three"}}))  # fmt: skip
            wait_for("the change after etcd and the API server restarted",
                     lambda: value(pod) == "three", timeout=60)  # fmt: skip
            assert pod.current()["generation"] == 3
            status = wait_for("status of three", lambda: (s := cluster.api.status_of("app"))
                              and s["applied"] == 1 and s["revision"] == pod.current()["revision"]
                              and s)  # fmt: skip
            assert status["phase"] == "complete", status
            for resource in ("configmaps", "pods"):
                restarts = operator.metric("hotconf_operator_watch_restarts_total",
                                           resource=resource)  # fmt: skip
                assert restarts is not None and restarts >= 2, (resource, restarts)
    finally:
        code = operator.stop()
    assert code == 0, operator.logs()[-4000:]
