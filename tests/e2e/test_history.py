"""End to end: each validated revision is kept in a ControllerRevision owned by its ConfigMap.

Proves, with the operator running as the chart's ServiceAccount (so a right the chart lacks
fails here): a revision that rolled out gets a record with its number, content revision, data,
who changed it (the field manager) and what the rollout did (complete, or rejected by which pod
and why); an invalid revision gets none; the owner reference names the ConfigMap by uid as its
controller, which is what the garbage collector deletes the history by (the test control plane
runs no garbage collector: the reference is checked, not the deletion); the
``hotconf.dev/history-limit`` annotation prunes the oldest records but never the last good one;
content that comes back takes the next number instead of a second record.
"""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

import pytest
from hotconf_e2e import configmap_manifest, kubectl, pods, wait_for

pytestmark = pytest.mark.e2e


def records(cluster: Any) -> list[dict[str, Any]]:
    path = f"/apis/apps/v1/namespaces/{cluster.namespace}/controllerrevisions"
    items = cluster.api.request("GET", path)["items"]
    return sorted(items, key=lambda r: r["revision"])


def outcome(record: dict[str, Any]) -> Any:
    return json.loads(record["metadata"]["annotations"]["hotconf.dev/outcome"])


def content(record: dict[str, Any]) -> Any:
    data = record["data"]
    return json.loads(gzip.decompress(base64.b64decode(data["gzip"]))) if "gzip" in data else data


def summary(cluster: Any) -> list[tuple[int, str, str]]:
    return [(r["revision"], content(r)["data"]["value"], outcome(r)["phase"])
            for r in records(cluster)]  # fmt: skip


def test_history_of_a_configmap(cluster: Any, operator: Any) -> None:
    kubectl(cluster.kubeconfig, "apply", "-f", "-",
            stdin=configmap_manifest("app", {"value": "one"}))  # fmt: skip
    cm = cluster.api.get_cm("app")
    with pods(cluster.api, cluster.workdir, 2, configmap="app",
              public_key_pem=cluster.public_key_pem):  # fmt: skip
        wait_for("one recorded", lambda: summary(cluster) == [(1, "one", "complete")])
        (first,) = records(cluster)
        meta = first["metadata"]
        assert meta["ownerReferences"] == [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "app",
             "uid": cm["metadata"]["uid"], "controller": True}
        ]  # fmt: skip
        assert meta["labels"]["hotconf.dev/configmap-uid"] == cm["metadata"]["uid"]
        annotations = meta["annotations"]
        status = cluster.api.status_of("app")
        assert status is not None and annotations["hotconf.dev/revision"] == status["revision"]
        assert annotations["hotconf.dev/changed-by"] == "kubectl-client-side-apply"
        assert annotations["hotconf.dev/changed-at"]
        # Complete: every pod applied it, or holds it for an application still connecting
        # (a pod whose push came before its worker connected is "held" until the next sweep).
        took = outcome(first)
        assert (took["applied"] + took.get("held", 0), took["total"]) == (2, 2), took
        assert outcome(first)["time"].endswith("Z")
        assert content(first) == {"data": cm["data"], "binaryData": {}}

        # A rejected revision is recorded with the pod and its reason.
        cluster.api.patch_cm("app", {"data": {"value": "two", "reject": "web-1"}})
        wait_for("two recorded", lambda: len(records(cluster)) == 2)
        wait_for("two rejected", lambda: summary(cluster)[1] == (2, "two", "rejected"))
        second = outcome(records(cluster)[1])
        assert second["pod"] == "web-1" and "web-1 refuses" in second["message"]

        # An invalid revision is pushed nowhere and recorded nowhere.
        cluster.api.patch_cm("app", {"data": {"value": "bad", "x.json": "{"}})
        wait_for("invalid", lambda: cluster.api.status_of("app")["phase"] == "invalid")
        assert len(records(cluster)) == 2

        # Limit 2: the rejected record goes, the last good one ("one") stays with the new one.
        cluster.api.patch_cm(
            "app",
            {
                "metadata": {"annotations": {"hotconf.dev/history-limit": "2"}},
                "data": {"value": "three", "reject": None, "x.json": None},
            },
        )
        wait_for(
            "pruned to 2",
            lambda: summary(cluster) == [(1, "one", "complete"), (3, "three", "complete")],
        )

        # Content that comes back takes the next number; no second record of it.
        cluster.api.patch_cm("app", {"data": {"value": "one"}})
        wait_for(
            "one renumbered",
            lambda: summary(cluster) == [(3, "three", "complete"), (4, "one", "complete")],
        )
    log = operator.logs()
    assert "cannot write the history" not in log and "cannot read the history" not in log
