"""End to end: a ConfigMap change whose watch event never reached the operator is rolled out.

Proves, with the operator's watch of ConfigMaps filtered so that it loses the change's events
(``hotconf_e2e.watch_filter``; the API server holds the change): the reconcile sweep sees the
newer revision in the API, waits out the grace period, rolls it out to the pod, counts it in
``hotconf_operator_missed_changes_total`` and posts a ``MissedChange`` Warning Event naming the
revision it missed; the status ends complete on the new revision.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hotconf_e2e import configmap_manifest, kubectl, pods, wait_for
from hotconf_e2e.watch_filter import WatchFilter

pytestmark = pytest.mark.e2e


def test_a_change_whose_watch_event_was_lost_is_rolled_out(cluster: Any) -> None:
    kubectl(cluster.kubeconfig, "apply", "-f", "-",
            stdin=configmap_manifest("app", {"value": "one"}))  # fmt: skip
    control_plane = cluster.control_plane
    watch = WatchFilter(control_plane.url, ca_cert=control_plane.pki.ca_cert).start()
    via_filter = watch.kubeconfig(cluster.operator_kubeconfig, cluster.workdir / "filtered")
    operator = cluster.operator("--reconcile-interval", "1", kubeconfig=via_filter)
    try:
        with pods(cluster.api, cluster.workdir, 1, configmap="app",
                  public_key_pem=cluster.public_key_pem) as [pod]:  # fmt: skip
            wait_for("first config", lambda: pod.current().get("value") == "one")
            watch.dropping.set()
            kubectl(cluster.kubeconfig, "patch", "configmap", "app", "--type=merge",
                    "-p", json.dumps({"data": {"value": "two"}}))  # fmt: skip
            wait_for("the change's watch event dropped", lambda: watch.dropped >= 1)
            # The sweep (every 1 s) finds it, the grace period (5 s) passes, it is rolled out.
            wait_for("the missed change on the pod", lambda: pod.current().get("value") == "two",
                     timeout=30)  # fmt: skip
            revision = pod.current()["revision"]
            wait_for("complete status", lambda: (s := cluster.api.status_of("app"))
                     and s["revision"] == revision and s["phase"] == "complete")  # fmt: skip
            assert operator.metric("hotconf_operator_missed_changes_total") == 1
            events = wait_for("MissedChange event", lambda: [
                e for e in cluster.api.events() if e.get("reason") == "MissedChange"])  # fmt: skip
            assert events[0]["type"] == "Warning" and revision[:19] in events[0]["message"]
    finally:
        assert operator.stop() == 0, operator.logs()[-4000:]
        watch.stop()
