"""End to end: a halted rollout, an operator restart, and pods that start afterwards.

Proves what docs/operator.md ("A halted rollout and an operator restart") promises: before the
restart a pod that starts after the halt gets the last revision every pod had applied (kept in
memory); the restarted operator keeps the rollout halted, pushes nothing to the pods that hold a
config, and counts the pods as they are (the pod that NACKed still counts as rejected, from its
sidecar's ``/v2/state``); a pod that starts after the restart still gets the last good revision,
read back from the ConfigMap's history (its ControllerRevisions: the restarted operator's memory
no longer has the data), is counted pending for the halted revision, and the status keeps naming
the pod that rejected it and why; the next good revision reaches every pod, the late ones
included.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hotconf_e2e import Pod, configmap_manifest, kubectl, pods, wait_for

pytestmark = pytest.mark.e2e

STAGED = {
    "hotconf.dev/rollout": "staged",
    "hotconf.dev/rollout-first": "1",
    "hotconf.dev/rollout-batch": "1",
}


def counts(status: dict[str, Any]) -> tuple[int, int, int, int]:
    return status["applied"], status["rejected"], status["pending"], status["total"]


def late_pod(cluster: Any, name: str, ip: str) -> Pod:
    return Pod(api=cluster.api, workdir=cluster.workdir, name=name, ip=ip, configmap="app",
               public_key_pem=cluster.public_key_pem)  # fmt: skip


def test_halted_rollout_survives_a_restart(cluster: Any) -> None:
    op = cluster.operator()
    late: list[Pod] = []
    kubectl(cluster.kubeconfig, "apply", "-f", "-",
            stdin=configmap_manifest("app", {"value": "one"}, annotations=STAGED))  # fmt: skip
    try:
        with pods(cluster.api, cluster.workdir, 3, configmap="app",
                  public_key_pem=cluster.public_key_pem) as ps:  # fmt: skip
            wait_for(
                "one everywhere", lambda: [p.current().get("value") for p in ps] == ["one"] * 3
            )
            kubectl(cluster.kubeconfig, "patch", "configmap", "app", "--type=merge",
                    "-p", json.dumps({"data": {"value": "two", "reject": "web-1"}}))  # fmt: skip
            halted = wait_for(
                "halted",
                lambda: (s := cluster.api.status_of("app")) and s["phase"] == "halted" and s,
            )
            assert counts(halted) == (1, 1, 1, 3)

            # Before the restart: a new pod gets the last good revision, "one".
            late.append(late_pod(cluster, "late-a", "127.0.0.40").start())
            wait_for("late-a runs one", lambda: late[0].current().get("value") == "one")
            wait_for(
                "late-a counted pending",
                lambda: (s := cluster.api.status_of("app")) and counts(s) == (1, 1, 2, 4),
            )

            assert op.stop() == 0, op.logs()[-3000:]
            op = cluster.operator()
            # Still halted, same counts: web-1's sidecar holds "two" but its worker NACKed it.
            wait_for(
                "restarted operator observed the pods",
                lambda: (
                    op.metric("hotconf_operator_pods", state="rejected") == 1
                    and op.metric("hotconf_operator_pods", state="pending") == 2
                ),
            )
            status = cluster.api.status_of("app")
            assert status is not None and status["phase"] == "halted"
            assert counts(status) == (1, 1, 2, 4), status
            assert status["pod"] == "web-1" and "web-1 refuses" in status["message"]
            assert op.metric("hotconf_operator_pushes_total", outcome="applied") is None
            received = [p.pushes_received() for p in [*ps, *late]]

            # After the restart: a new pod gets the last good revision, "one", from the
            # history, and is counted pending (it does not hold the halted revision).
            late.append(late_pod(cluster, "late-b", "127.0.0.41").start())
            wait_for("late-b runs one", lambda: late[1].current().get("value") == "one")
            wait_for(
                "late-b counted pending",
                lambda: (s := cluster.api.status_of("app")) and counts(s) == (1, 1, 3, 5),
            )
            assert op.metric("hotconf_operator_pods", state="pending") == 3
            # Only late-b was pushed to, once: the pods that hold a config kept it. (Its
            # worker may connect after the push: the operator counts that push "held".)
            assert [p.pushes_received() for p in [*ps, late[0]]] == received
            assert late[1].pushes_received() == 1
            assert [p.current().get("value") for p in ps] == ["two", "one", "one"]
            status = cluster.api.status_of("app")
            assert status is not None and status["phase"] == "halted" and status["pod"] == "web-1"

            # The fix reaches everybody, the late pods included.
            cluster.api.patch_cm("app", {"data": {"value": "three", "reject": "nobody"}})
            everyone = [*ps, *late]
            wait_for(
                "three everywhere",
                lambda: [p.current().get("value") for p in everyone] == ["three"] * 5,
            )
            wait_for(
                "complete 5/5",
                lambda: (s := cluster.api.status_of("app"))
                and (s["phase"], *counts(s)) == ("complete", 5, 0, 0, 5),
            )  # fmt: skip
    finally:
        for pod in late:
            pod.stop()
        assert op.stop() == 0, op.logs()[-3000:]
