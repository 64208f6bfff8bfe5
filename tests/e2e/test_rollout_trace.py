"""End to end: one rollout traced hop by hop, across the operator, the sidecar and the library.

Proves: with ``HOTCONF_TRACE_FILE`` set for the real operator, a real sidecar and a worker on
``hotconf.run`` (thread mode), the revision of one ConfigMap change is recorded at every hop of
``hotconf_wire.trace.HOPS`` exactly once, each by the process that passes it, with times
(``CLOCK_MONOTONIC``, one clock on this machine) in rollout order: a hop never precedes the
one that causes it. Without the variable nothing is traced (the other end-to-end tests run so).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hotconf_e2e import configmap_manifest, kubectl, pods, wait_for

from hotconf_wire.trace import HOPS

pytestmark = pytest.mark.e2e


def trace_of(path: Path, revision: str) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [line for line in lines if line["rev"] == revision]


def test_every_hop_of_a_rollout_is_traced_in_order(
    cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trace = tmp_path / "trace.jsonl"
    monkeypatch.setenv("HOTCONF_TRACE_FILE", str(trace))  # every process started below
    operator = cluster.operator()
    try:
        kubectl(cluster.kubeconfig, "apply", "-f", "-",
                stdin=configmap_manifest("app", {"value": "one"}))  # fmt: skip
        with pods(cluster.api, cluster.workdir, 1, configmap="app",
                  public_key_pem=cluster.public_key_pem) as (pod,):  # fmt: skip
            wait_for("the worker runs 'one'", lambda: (pod.current() or {}).get("value") == "one")
            cluster.api.patch_cm("app", {"data": {"value": "two"}})
            wait_for("the worker runs 'two'", lambda: (pod.current() or {}).get("value") == "two")
            revision = pod.current()["revision"]
            lines = wait_for(
                "the status hop of 'two' in the trace",
                lambda: (
                    (got := trace_of(trace, revision))
                    and any(line["hop"] == "operator.status" for line in got)
                    and got
                ),
            )
            worker_pid = pod.worker.pid if pod.worker else None
    finally:
        code = operator.stop()
    assert code == 0, operator.logs()[-4000:]

    hops = [line["hop"] for line in lines]
    assert sorted(hops) == sorted(HOPS), hops  # each hop once
    by_hop = {line["hop"]: line for line in lines}
    processes = {hop: line["proc"] for hop, line in by_hop.items()}
    assert processes == {hop: hop.split(".")[0] for hop in HOPS}
    assert by_hop["client.started"]["pid"] == worker_pid
    assert by_hop["operator.signed"]["pod"] == pod.name
    assert by_hop["sidecar.verified"]["pod"] == f"{pod.namespace}/{pod.name}"
    assert {line["cm"] for line in lines} == {f"{cluster.namespace}/app"}
    times = [by_hop[hop]["t"] for hop in HOPS]
    assert times == sorted(times), list(zip(HOPS, times, strict=True))
