"""End to end: an application process that dies while the sidecar waits for its ACK.

Proves: when web-1's worker exits on the new config without answering, its sidecar answers the
push with that client ``pending``; the operator counts the push as ``pending`` (not applied, not
rejected), ends the rollout ``incomplete`` and names the client in the status; the sidecar keeps
the revision, so once no client of that pod is connected the reconcile sweep counts the pod
held, not applied, and the status names it (the sidecar holds it for the next client); and the
restarted
worker gets that revision from the sidecar on connect, runs it and ACKs, no push needed.
"""

from __future__ import annotations

from typing import Any

import pytest
from hotconf_e2e import configmap_manifest, kubectl, pods, wait_for

from hotconf_wire.protocol import compute_revision

pytestmark = pytest.mark.e2e


def test_client_gone_during_ack_wait(cluster: Any, operator: Any) -> None:
    kubectl(cluster.kubeconfig, "apply", "-f", "-",
            stdin=configmap_manifest("app", {"value": "one"}))  # fmt: skip
    with pods(cluster.api, cluster.workdir, 2, configmap="app",
              public_key_pem=cluster.public_key_pem) as ps:  # fmt: skip
        wait_for("one everywhere", lambda: [p.current().get("value") for p in ps] == ["one"] * 2)
        wait_for("complete", lambda: (s := cluster.api.status_of("app")) and s["applied"] == 2)
        applied_before = operator.metric("hotconf_operator_pushes_total", outcome="applied")
        two = {"value": "two", "crash": "web-1"}
        cluster.api.patch_cm("app", {"data": two})

        crashed = ps[1].worker
        assert crashed is not None
        assert crashed.wait(timeout=20) == 3  # the worker died in validate, no ACK sent
        wait_for(
            "the rollout counted web-1 pending",
            lambda: operator.metric("hotconf_operator_rollout_duration_seconds_count",
                                    phase="incomplete") == 1,
        )  # fmt: skip
        assert operator.metric("hotconf_operator_pushes_total", outcome="pending") == 1
        assert operator.metric("hotconf_operator_pushes_total", outcome="rejected") is None
        assert (
            operator.metric("hotconf_operator_pushes_total", outcome="applied")
            == applied_before + 1
        )
        incomplete = [
            e
            for e in cluster.api.events()
            if e.get("reason") in ("RolloutRejected", "RolloutHalted")
        ]
        assert incomplete == []  # a vanished client is no rejection

        revision = compute_revision(two)
        (held,) = ps[1].state()["configmaps"]
        assert held["revision"] == revision and held["clients"] == []
        wait_for(
            "the sweep counts the pod whose sidecar holds it for the next client",
            lambda: (s := cluster.api.status_of("app"))
            and (s["revision"], s["phase"], s["applied"], s["held"], s["pending"], s["pod"])
            == (revision, "complete", 1, 1, 0, "web-1"),
        )  # fmt: skip

        ps[1].start_worker()  # as the kubelet restarts the container
        wait_for("the restarted worker runs two", lambda: ps[1].current().get("value") == "two")
        (held,) = ps[1].state()["configmaps"]
        assert [(c["result"], c["revision"]) for c in held["clients"]] == [("ack", revision)]
        assert ps[1].current()["pid"] != crashed.pid
        assert operator.metric("hotconf_operator_pushes_total", outcome="pending") == 1
        assert [p.current().get("value") for p in ps] == ["two", "two"]
