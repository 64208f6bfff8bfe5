"""End to end: the operator's liveness endpoint and what its metrics say after rollouts.

Proves: ``/healthz`` on ``--health-port`` answers 200 while the operator runs (and nothing
answers once it has stopped); after a rollout to two pods the metrics count exactly the pushes
made by outcome (``applied``, then ``rejected`` for a NACK), observe one rollout duration per
rollout under its final phase, and set the pods-per-state gauge to what the status annotation
says.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest
from hotconf_e2e import configmap_manifest, free_port, kubectl, pods, wait_for

pytestmark = pytest.mark.e2e


def healthz(port: int) -> tuple[int, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
        return r.status, json.loads(r.read() or b"null")


def status_is(cluster: Any, phase: str) -> Any:
    s = cluster.api.status_of("app")
    return s if s and s["phase"] == phase else None


def test_healthz_and_metrics_after_rollouts(cluster: Any) -> None:
    port = free_port()
    op = cluster.operator(health_port=port)
    try:

        def alive() -> bool:
            try:
                return healthz(port)[0] == 200
            except OSError:
                return False

        wait_for("/healthz answers", alive)
        kubectl(cluster.kubeconfig, "apply", "-f", "-",
                stdin=configmap_manifest("app", {"value": "one"}))  # fmt: skip
        with pods(cluster.api, cluster.workdir, 2, configmap="app",
                  public_key_pem=cluster.public_key_pem) as ps:  # fmt: skip
            wait_for("first config", lambda: [p.current().get("value") for p in ps] == ["one"] * 2)
            wait_for(
                "complete 2/2", lambda: (s := status_is(cluster, "complete")) and s["applied"] == 2
            )

            def m(name: str, **labels: str) -> float:
                return op.metric(name, **labels) or 0.0

            base_applied = m("hotconf_operator_pushes_total", outcome="applied")
            base_complete = m("hotconf_operator_rollout_duration_seconds_count", phase="complete")
            # the two pods were brought to "one" by pushes (held: before its worker connected)
            assert base_applied + m("hotconf_operator_pushes_total", outcome="held") >= 2

            cluster.api.patch_cm("app", {"data": {"value": "two"}})
            wait_for(
                "two everywhere", lambda: [p.current().get("value") for p in ps] == ["two"] * 2
            )
            revision = ps[0].current()["revision"]
            wait_for(
                "complete for two",
                lambda: (s := status_is(cluster, "complete")) and s["revision"] == revision,
            )
            wait_for(
                "one more complete rollout observed",
                lambda: (
                    m("hotconf_operator_rollout_duration_seconds_count", phase="complete")
                    == base_complete + 1
                ),
            )
            assert m("hotconf_operator_pushes_total", outcome="applied") == base_applied + 2
            assert m("hotconf_operator_pods", state="applied") == 2
            assert m("hotconf_operator_pods", state="pending") == 0
            assert m("hotconf_operator_rollout_duration_seconds_sum", phase="complete") > 0

            # web-1 NACKs: one push applied, one rejected; the rollout ends "rejected".
            cluster.api.patch_cm("app", {"data": {"value": "three", "reject": "web-1"}})
            status = wait_for("rejected status", lambda: status_is(cluster, "rejected"))
            assert (status["applied"], status["rejected"], status["pending"]) == (1, 1, 0)
            wait_for(
                "rejected rollout observed",
                lambda: m("hotconf_operator_rollout_duration_seconds_count", phase="rejected") == 1,
            )
            assert m("hotconf_operator_pushes_total", outcome="applied") == base_applied + 3
            assert m("hotconf_operator_pushes_total", outcome="rejected") == 1
            assert m("hotconf_operator_pods", state="applied") == 1
            assert m("hotconf_operator_pods", state="rejected") == 1
            assert m("hotconf_operator_pods", state="pending") == 0
            assert m("hotconf_operator_invalid_configmaps_total") == 0
            assert alive()
    finally:
        assert op.stop() == 0, op.logs()[-3000:]
    with pytest.raises(OSError):
        healthz(port)
