"""End to end: two operator replicas with kopf peering push once, and the survivor takes over.

Proves: with a ``ClusterKopfPeering`` named ``hotconf``, a replica that joins with a higher
priority makes the working one pause; the joiner asks the sidecars first and pushes nothing they
already hold; a change then reaches every pod with exactly one push per pod (counted by each
sidecar); the paused replica, whose reconcile sweep still runs with the revision it knew before
it paused, declines to push it (no pod is rolled back); when the active replica is killed
(SIGKILL: its peering record stays until ``--peering-lifetime`` expires) the paused one resumes
and rolls out the next change, again once per pod, one application restart per revision.
"""

from __future__ import annotations

from typing import Any

import pytest
from hotconf_e2e import configmap_manifest, kubectl, pods, wait_for

pytestmark = pytest.mark.e2e

PEERING = "/apis/kopf.dev/v1/clusterkopfpeerings"
LIFETIME = ("--peering-lifetime", "3")


def peers(cluster: Any) -> dict[str, Any]:
    body = cluster.api.request("GET", f"{PEERING}/hotconf")
    return {k: v for k, v in (body.get("status") or {}).items() if v.get("lifetime", 1) > 0}


def pushes(op: Any) -> float:
    text = op.metrics()
    return sum(
        float(line.rpartition(" ")[2])
        for line in text.splitlines()
        if line.startswith("hotconf_operator_pushes_total{")
    )


def values(ps: list[Any]) -> list[Any]:
    return [p.current().get("value") for p in ps]


def test_two_replicas_push_once_and_fail_over(
    cluster: Any, chart_release_ha: Any, tmp_path: Any
) -> None:
    # The replicas run as the HA release's ServiceAccount: its rights include the peering object
    # the chart created (ClusterKopfPeering "hotconf").
    assert cluster.api.request("GET", f"{PEERING}/hotconf")["metadata"]["name"] == "hotconf"
    cluster.operator_kubeconfig = chart_release_ha.operator_kubeconfig(
        tmp_path / "operator-ha.kubeconfig", namespace=cluster.namespace
    )
    kubectl(cluster.kubeconfig, "apply", "-f", "-",
            stdin=configmap_manifest("app", {"value": "one"}))  # fmt: skip
    # B starts alone and works; A (higher priority) joins later and B pauses, knowing "one".
    b = cluster.operator(
        *LIFETIME, "--peering-priority", "50", "--log-level", "debug",
        standalone=False, log_name="operator-b.log",
    )  # fmt: skip
    a = None
    try:
        with pods(cluster.api, cluster.workdir, 3, configmap="app",
                  public_key_pem=cluster.public_key_pem) as ps:  # fmt: skip
            wait_for("B brings every pod to one", lambda: values(ps) == ["one"] * 3)
            wait_for(
                "B counts 3 applied",
                lambda: b.metric("hotconf_operator_pods", state="applied") == 3,
            )
            b_pushes = pushes(b)
            a = cluster.operator(
                *LIFETIME, "--peering-priority", "100", standalone=False, log_name="operator-a.log"
            )
            wait_for("B pauses for A", lambda: "Pausing operations in favour of" in b.logs())
            wait_for(
                "A reconciled", lambda: a.metric("hotconf_operator_pods", state="applied") == 3
            )
            assert pushes(a) == 0  # A asked the sidecars first: they held "one" already
            before = [p.pushes_received() for p in ps]

            cluster.api.patch_cm("app", {"data": {"value": "two"}})
            wait_for("two everywhere", lambda: values(ps) == ["two"] * 3)
            wait_for("complete", lambda: (s := cluster.api.status_of("app")) and s["applied"] == 3)
            # The paused B still sweeps every 2 s, knowing only "one": it must not roll back.
            wait_for("B's sweep declines its stale revision", lambda: "not pushing" in b.logs())
            assert values(ps) == ["two"] * 3
            assert [p.pushes_received() for p in ps] == [x + 1 for x in before]
            assert pushes(a) == 3 and pushes(b) == b_pushes

            a.kill()
            wait_for("A's record cleaned by B", lambda: len(peers(cluster)) == 1)
            cluster.api.patch_cm("app", {"data": {"value": "three"}})
            wait_for("B rolls out three", lambda: values(ps) == ["three"] * 3)
            revision = ps[0].current()["revision"]
            wait_for(
                "complete for three",
                lambda: (s := cluster.api.status_of("app"))
                and (s["revision"], s["applied"]) == (revision, 3),
            )  # fmt: skip
            # Once per pod and revision, from A's "two" on; one application restart each.
            assert [p.pushes_received() for p in ps] == [x + 2 for x in before]
            for pod in ps:
                assert [r["value"] for r in pod.reports()] == ["one", "two", "three"], pod.name
    finally:
        if a is not None:
            a.kill()
        assert b.stop() == 0, b.logs()[-3000:]
