"""End to end: a newer revision arriving mid-rollout supersedes it.

Proves: while a staged rollout of revision B waits on a blocked pod in its first batch (its
worker is stopped with SIGSTOP, so the sidecar waits for an ACK), applying revision C cancels
B's rollout: the pods B had not reached never run B, the blocked pod's sidecar holds C, every
worker ends on C (the blocked one once it runs again), no worker runs B after it ran C, every
sidecar holds C, and the status reports C complete.
"""

from __future__ import annotations

import json
import signal
from typing import Any

import pytest
from hotconf_e2e import Pod, configmap_manifest, kubectl, pods, wait_for

from hotconf_wire.protocol import compute_revision

pytestmark = pytest.mark.e2e

STAGED = {
    "hotconf.dev/rollout": "staged",
    "hotconf.dev/rollout-first": "1",
    "hotconf.dev/rollout-batch": "1",
}


def held(pod: Pod) -> str | None:
    entries = pod.state()["configmaps"]
    return entries[0]["revision"] if entries else None


def test_newer_revision_supersedes_a_blocked_rollout(cluster: Any, operator: Any) -> None:
    b = compute_revision({"value": "two"})
    c = compute_revision({"value": "three"})
    kubectl(cluster.kubeconfig, "apply", "-f", "-",
            stdin=configmap_manifest("app", {"value": "one"}, annotations=STAGED))  # fmt: skip
    with pods(cluster.api, cluster.workdir, 3, configmap="app",
              public_key_pem=cluster.public_key_pem) as ps:  # fmt: skip
        wait_for("first config", lambda: [p.current().get("value") for p in ps] == ["one"] * 3)
        blocked = ps[0]  # web-0: the first batch of a staged rollout
        assert blocked.worker is not None
        blocked.worker.send_signal(signal.SIGSTOP)
        try:
            cluster.api.patch_cm("app", {"data": {"value": "two"}})
            # B reached web-0's sidecar, whose worker cannot ACK: the rollout waits there.
            wait_for("B held by the blocked pod", lambda: held(blocked) == b)
            # The status writer is not in the push's path: it may land a moment after the push.
            wait_for(
                "B rolling",
                lambda: (s := cluster.api.status_of("app"))
                and (s["revision"], s["phase"]) == (b, "rolling"),
            )  # fmt: skip
            kubectl(cluster.kubeconfig, "patch", "configmap", "app", "--type=merge",
                    "-p", json.dumps({"data": {"value": "three"}}))  # fmt: skip
            wait_for("C held by the blocked pod", lambda: held(blocked) == c)
        finally:
            blocked.worker.send_signal(signal.SIGCONT)
        wait_for(
            "C in every worker", lambda: [p.current().get("value") for p in ps] == ["three"] * 3
        )
        wait_for(
            "C complete",
            lambda: (
                (s := cluster.api.status_of("app"))
                and (s["revision"], s["phase"], s["applied"]) == (c, "complete", 3)
            ),
        )
        assert [held(p) for p in ps] == [c, c, c]
        for pod in ps[1:]:  # never reached by B's rollout
            assert b not in [r["revision"] for r in pod.reports()], pod.name
        for pod in ps:
            revisions = [r["revision"] for r in pod.reports()]
            assert revisions[-1] == c
            assert b not in revisions[revisions.index(c) :], (pod.name, revisions)
        # B's cancelled rollout left no Event or status behind after C's.
        reasons = [(e.get("reason"), e.get("message", "")) for e in cluster.api.events()]
        assert not [r for r in reasons if r[0] == "RolloutComplete" and b[:19] in r[1]], reasons
