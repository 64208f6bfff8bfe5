"""End to end through an API outage: the operator's watches are cut mid-stream and the API
refuses connections for a while; a ConfigMap change made during the outage still reaches the
worker once the API is back (no silently stopped watch), with no operator restart."""

from __future__ import annotations

import json
import time

import pytest
from hotconf_e2e import configmap_manifest, kubectl, pods, wait_for
from hotconf_e2e.outage import ApiProxy

pytestmark = pytest.mark.e2e


def test_change_during_an_api_outage_arrives_after_it(cluster):
    kubectl(cluster.kubeconfig, "apply", "-f", "-",
            stdin=configmap_manifest("app", {"value": "one"}))  # fmt: skip
    proxy = ApiProxy(cluster.control_plane.port).start()
    via_proxy = cluster.workdir / "kubeconfig-proxy"
    # The operator's own identity, through the proxy (a TCP proxy: TLS passes through it).
    via_proxy.write_text(cluster.operator_kubeconfig.read_text().replace(
        cluster.control_plane.url, f"https://127.0.0.1:{proxy.port}"))  # fmt: skip
    # No periodic reconcile during the test: only a re-established watch can bring the change.
    operator = cluster.operator("--reconcile-interval", "3600", kubeconfig=via_proxy)
    try:
        with pods(cluster.api, cluster.workdir, 1, configmap="app",
                  public_key_pem=cluster.public_key_pem) as [pod]:  # fmt: skip
            wait_for("first config", lambda: (pod.current() or {}).get("value") == "one")

            proxy.cut()
            kubectl(cluster.kubeconfig, "patch", "configmap", "app", "--type=merge",
                    "-p", json.dumps({"data": {"value": "two"}}))  # fmt: skip
            time.sleep(3)  # the outage: the operator cannot see the change
            assert (pod.current() or {}).get("value") == "one"
            assert operator.proc is not None and operator.proc.poll() is None

            proxy.restore()
            wait_for("the change after the outage",
                     lambda: (pod.current() or {}).get("value") == "two", timeout=60)  # fmt: skip
            assert pod.current()["generation"] == 2  # one restart, on the newest revision
            # The outage is visible in the watch-restart metric, per resource.
            for resource in ("configmaps", "pods"):
                restarts = operator.metric("hotconf_operator_watch_restarts_total",
                                           resource=resource)  # fmt: skip
                assert restarts is not None and restarts >= 1, (resource, restarts)
    finally:
        code = operator.stop()
        proxy.stop()
    assert code == 0, operator.logs()[-4000:]
