"""End to end: the operator watches only pods labelled ``hotconf.dev/inject: "true"``, selected
by the API server.

Proves: the real operator, as the chart's ServiceAccount, lists and watches pods with the label
selector ``hotconf.dev/inject=true`` (the API server's audit log shows every pod request it
made), so a pod annotated ``hotconf.dev/configmaps`` but not labelled gets no push and is not
counted in the status, while a labelled one gets every revision; with ``--pod-selector '*'`` (the
migration from the legacy annotation) the operator watches every pod, and the unlabelled pod is
rolled out to as well.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from hotconf_e2e import Pod, configmap_manifest, kubectl, wait_for

pytestmark = pytest.mark.e2e


def start_pods(cluster: Any) -> tuple[Pod, Pod]:
    common = dict(api=cluster.api, workdir=cluster.workdir, configmap="app",
                  public_key_pem=cluster.public_key_pem)  # fmt: skip
    labelled = Pod(name="labelled", ip="127.0.0.71", **common).start()
    unlabelled = Pod(name="unlabelled", ip="127.0.0.72", labels={}, **common).start()
    return labelled, unlabelled


def value(pod: Pod) -> Any:
    return (pod.current() or {}).get("value")


def pod_requests(cluster: Any) -> list[dict[str, Any]]:
    """The operator's list and watch requests on pods, as the API server's audit log has them."""
    return [
        event
        for event in cluster.control_plane.audit_events(cluster.release.username)
        if (event.get("objectRef") or {}).get("resource") == "pods"
        and event["verb"] in ("list", "watch")
    ]


def test_only_labelled_pods_are_watched_and_rolled_out_to(cluster: Any, operator: Any) -> None:
    kubectl(cluster.kubeconfig, "apply", "-f", "-",
            stdin=configmap_manifest("app", {"value": "one"}))  # fmt: skip
    labelled, unlabelled = start_pods(cluster)
    try:
        wait_for("the labelled pod runs 'one'", lambda: value(labelled) == "one")
        cluster.api.patch_cm("app", {"data": {"value": "two"}})
        wait_for("the labelled pod runs 'two'", lambda: value(labelled) == "two")
        status = wait_for(
            "status applied 1/1",
            lambda: (s := cluster.api.status_of("app")) and s["applied"] == 1 and s,
        )
        assert status["total"] == 1, status  # fmt: skip
        # Two revisions went out while the unlabelled pod ran: it got neither.
        assert unlabelled.pushes_received() == 0
        assert value(unlabelled) is None

        requests = pod_requests(cluster)
        assert requests, "the operator made no pod list or watch request"
        for event in requests:
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(event["requestURI"]).query)
            assert query.get("labelSelector") == ["hotconf.dev/inject=true"], event["requestURI"]
    finally:
        labelled.stop()
        unlabelled.stop()


def test_every_pod_is_watched_with_the_migration_selector(cluster: Any, tmp_path: Path) -> None:
    operator = cluster.operator("--pod-selector", "*")
    try:
        kubectl(cluster.kubeconfig, "apply", "-f", "-",
                stdin=configmap_manifest("app", {"value": "one"}))  # fmt: skip
        labelled, unlabelled = start_pods(cluster)
        try:
            wait_for(
                "both pods run 'one'", lambda: [value(labelled), value(unlabelled)] == ["one"] * 2
            )
            status = wait_for(
                "status applied 2/2",
                lambda: (s := cluster.api.status_of("app")) and s["applied"] == 2 and s,
            )
            assert status["total"] == 2, status  # fmt: skip
        finally:
            labelled.stop()
            unlabelled.stop()
    finally:
        code = operator.stop()
    assert code == 0, operator.logs()[-4000:]
