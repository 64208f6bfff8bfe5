"""End to end through an API outage: the operator's watches are cut mid-stream and the API
refuses connections for a while; a ConfigMap change made during the outage still reaches the
worker once the API is back (no silently stopped watch), with no operator restart; and a change
made right after the API is back reaches the worker within the operator's longest retry delay
(``--api-retry-max``) plus a margin for a loaded machine: far sooner than with kopf's default
delays, which after this outage would retry only 7.5 s after the API is back."""

from __future__ import annotations

import json
import time

import pytest
from hotconf_e2e import configmap_manifest, kubectl, pods, wait_for
from hotconf_e2e.outage import ApiProxy

from hotconf_operator._settings import API_RETRY_MAX

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


#: Seconds the API is away: with kopf's default delays (1, 1, 2, 3, 5, 8 s: attempts 0, 1, 2, 4,
#: 7, 12 and 20 s into the outage) the first attempt after it would come 7.5 s after it ends.
OUTAGE = 12.5
#: Seconds, beyond the longest retry delay, that the change gets to reach the worker once the
#: watch is back (the PATCH is made before the clock starts): the watch's reconnection and event,
#: the push, the restart, with room for a machine loaded by other test runs.
MARGIN = 3.0


def test_a_change_right_after_an_outage_reaches_the_pod_within_the_retry_bound(cluster):
    kubectl(cluster.kubeconfig, "apply", "-f", "-",
            stdin=configmap_manifest("app", {"value": "one"}))  # fmt: skip
    proxy = ApiProxy(cluster.control_plane.port).start()
    via_proxy = cluster.workdir / "kubeconfig-proxy"
    via_proxy.write_text(cluster.operator_kubeconfig.read_text().replace(
        cluster.control_plane.url, f"https://127.0.0.1:{proxy.port}"))  # fmt: skip
    operator = cluster.operator("--reconcile-interval", "3600", kubeconfig=via_proxy)
    try:
        with pods(cluster.api, cluster.workdir, 1, configmap="app",
                  public_key_pem=cluster.public_key_pem) as [pod]:  # fmt: skip
            wait_for("first config", lambda: (pod.current() or {}).get("value") == "one")
            proxy.cut()
            time.sleep(OUTAGE)
            proxy.restore()
            cluster.api.patch_cm("app", {"data": {"value": "two"}})  # as the admin, directly
            bound = API_RETRY_MAX.default + MARGIN
            arrived = lambda: (pod.current() or {}).get("value") == "two"  # noqa: E731
            wait_for(f"the change within {bound:g} s of the API's return", arrived, timeout=bound)
            assert pod.current()["generation"] == 2
    finally:
        code = operator.stop()
        proxy.stop()
    assert code == 0, operator.logs()[-4000:]
