"""End to end: staged rollouts halt on a NACK; late pods catch up; operator restarts are quiet.

Proves: with ``hotconf.dev/rollout: staged`` a NACK from the pod in the first batches halts the
rollout, the pods not reached keep their old config, and the status names the pod and reason;
a pod that starts after a rollout gets the current revision; restarting the operator pushes
nothing where the revision matches, so no application restarts.
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


def values(ps: list[Pod]) -> list[Any]:
    return [p.current().get("value") for p in ps]


def test_staged_rollout_halts_on_nack(cluster: Any, operator: Any) -> None:
    kubectl(cluster.kubeconfig, "apply", "-f", "-",
            stdin=configmap_manifest("app", {"value": "one"}, annotations=STAGED))  # fmt: skip
    with pods(cluster.api, cluster.workdir, 4, configmap="app",
              public_key_pem=cluster.public_key_pem) as ps:  # fmt: skip
        wait_for("first config", lambda: values(ps) == ["one"] * 4)
        # web-1 (second batch) refuses; web-0 applies first; web-2 and web-3 are never reached.
        kubectl(cluster.kubeconfig, "patch", "configmap", "app", "--type=merge",
                "-p", json.dumps({"data": {"value": "two", "reject": "web-1"}}))  # fmt: skip
        status = wait_for(
            "halted status",
            lambda: (s := cluster.api.status_of("app")) and s["phase"] == "halted" and s,
        )
        assert status["pod"] == "web-1" and "web-1 refuses" in status["message"]
        assert (status["applied"], status["rejected"], status["pending"]) == (1, 1, 2)
        assert values(ps) == ["two", "one", "one", "one"]
        for pod in ps[2:]:
            assert pod.current()["generation"] == 1
        events = wait_for(
            "RolloutHalted event",
            lambda: [e for e in cluster.api.events() if e.get("reason") == "RolloutHalted"],
        )
        assert "web-1" in events[0]["message"]
        # A fixed config supersedes the halted one and reaches everybody.
        cluster.api.patch_cm("app", {"data": {"value": "three", "reject": "nobody"}})
        wait_for("fixed config everywhere", lambda: values(ps) == ["three"] * 4)
        wait_for(
            "complete status",
            lambda: (s := cluster.api.status_of("app")) and s["phase"] == "complete",
        )


def test_new_pod_catches_up_and_restart_is_quiet(cluster: Any) -> None:
    op = cluster.operator()
    kubectl(cluster.kubeconfig, "apply", "-f", "-",
            stdin=configmap_manifest("app", {"value": "one"}))  # fmt: skip
    try:
        with pods(cluster.api, cluster.workdir, 2, configmap="app",
                  public_key_pem=cluster.public_key_pem) as ps:  # fmt: skip
            wait_for("first config", lambda: values(ps) == ["one"] * 2)
            cluster.api.patch_cm("app", {"data": {"value": "two"}})
            wait_for("second config", lambda: values(ps) == ["two"] * 2)

            late = Pod(api=cluster.api, workdir=cluster.workdir, name="late", ip="127.0.0.40",
                       configmap="app", public_key_pem=cluster.public_key_pem)  # fmt: skip
            try:
                late.start()
                wait_for("late pod catches up", lambda: late.current().get("value") == "two")
                wait_for(
                    "status counts the late pod",
                    lambda: (s := cluster.api.status_of("app")) and s["applied"] == 3,
                )
                assert op.stop() == 0
                op = cluster.operator()
                # Wait until the restarted operator has reconciled (two sweeps of 2 s), then
                # check nobody restarted and no push was made.
                wait_for(
                    "restarted operator reconciled",
                    lambda: 'hotconf_operator_pods{state="applied"} 3.0' in _metrics(op),
                )
                metrics = _metrics(op)
                for line in metrics.splitlines():
                    if line.startswith("hotconf_operator_pushes_total{"):
                        raise AssertionError(f"restart pushed: {line}")
                for pod in [*ps, late]:
                    assert pod.current()["generation"] == (1 if pod is late else 2), pod.name
                    assert len(pod.reports()) == (1 if pod is late else 2)
            finally:
                late.stop()
    finally:
        assert op.stop() == 0, op.logs()[-3000:]


def _metrics(op: Any) -> str:
    try:
        return str(op.metrics())
    except OSError:
        return ""
