"""End to end: hotconf shares its ConfigMaps with other writers, as on a GitOps-run cluster.

Proves: a ConfigMap applied server-side by another field manager (``kubectl apply
--server-side``, as Argo CD and Flux do) is rolled out, and the operator's status write neither
conflicts with that manager nor takes its fields: the operator owns only its
``hotconf.dev/status`` annotation, under a field manager of its own; the next server-side apply
of a change succeeds without ``--force-conflicts``, keeps the status annotation and is rolled out.
A status annotation that someone removes is written again.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hotconf_e2e import kubectl, pods, wait_for

pytestmark = pytest.mark.e2e


def manifest(value: str) -> str:
    return json.dumps({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "app", "labels": {"hotconf.dev/enabled": "true"}},
        "data": {"value": value},
    })  # fmt: skip


def apply(cluster: Any, value: str) -> str:
    return kubectl(cluster.kubeconfig, "apply", "--server-side", "--field-manager=gitops",
                   "-f", "-", stdin=manifest(value))  # fmt: skip


def managers(cluster: Any) -> dict[str, set[str]]:
    """Field manager -> the fields it owns, as dotted paths of the managedFields tree."""

    def paths(tree: dict[str, Any], prefix: str = "") -> set[str]:
        out = set()
        for key, sub in tree.items():
            if key == ".":
                continue
            path = prefix + key
            out |= paths(sub, path + ".") if sub else {path}
        return out

    cm = cluster.api.get_cm("app")
    return {m["manager"]: paths(m.get("fieldsV1", {})) for m in cm["metadata"]["managedFields"]}


def applied(cluster: Any, pod: Any) -> Any:
    status = cluster.api.status_of("app")
    return status and status["revision"] == pod.current().get("revision") and status["applied"]


def test_server_side_apply_and_status_writes_share_the_configmap(
    cluster: Any, operator: Any
) -> None:
    apply(cluster, "one")
    with pods(cluster.api, cluster.workdir, 1, configmap="app",
              public_key_pem=cluster.public_key_pem) as [pod]:  # fmt: skip
        wait_for("one", lambda: pod.current().get("value") == "one")
        wait_for("status of one", lambda: applied(cluster, pod))
        owned = managers(cluster)
        ours = {m for m, fields in owned.items() if any("hotconf.dev/status" in f for f in fields)}
        assert ours == {"hotconf-operator"}, owned
        assert owned["hotconf-operator"] == {"f:metadata.f:annotations.f:hotconf.dev/status"}
        assert "f:data.f:value" in owned["gitops"]

        out = apply(cluster, "two")  # no conflict, no --force-conflicts
        assert "serverside-applied" in out, out
        wait_for("two", lambda: pod.current().get("value") == "two")
        wait_for("status of two", lambda: applied(cluster, pod))
        assert "f:data.f:value" in managers(cluster)["gitops"]

        # Someone removes the status annotation: the operator writes it again.
        kubectl(cluster.kubeconfig, "annotate", "configmap", "app", "hotconf.dev/status-")
        status = wait_for("the status written again", lambda: cluster.api.status_of("app"))
        assert status["revision"] == pod.current()["revision"] and status["applied"] == 1
        assert pod.current()["generation"] == 2  # no push, no restart for it
