"""Injection misses are visible: the real ``hotconf-operator``, watching the API server, notices
pods labelled ``hotconf.dev/inject: "true"`` that were admitted without the sidecar (as the API
server does with ``failurePolicy: Ignore`` while the webhook is down), Running with an IP or still
Pending, posts one ``SidecarNotInjected`` Warning Event on each saying how to fix it, and counts
them in ``hotconf_operator_injection_misses_total`` and ``hotconf_operator_pods_missing_sidecar``
(which drops when such a pod is deleted). A pod that went through the webhook, and a pod without
the label, are not reported. With ``--pod-selector '*'`` (the migration from the legacy
annotation) a pod that asks with the annotation alone is reported too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hotconf_e2e import running_status, wait_for
from hotconf_e2e.webhook import Operator, make_pod, running_operator


@pytest.fixture
def operator(
    tmp_path: Path, control_plane: Any, chart_release: Any, kube_namespace: str
) -> Iterator[Operator]:
    with running_operator(
        tmp_path, "--sidecar-image", "registry.example/hotconf:1",
        control_plane=control_plane, release=chart_release, namespace=kube_namespace,
    ) as running:  # fmt: skip
        yield running


OPT_IN = {"hotconf.dev/inject": "true"}


def pod(
    name: str, annotations: dict[str, str], *, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    body = make_pod(annotations, labels=labels)
    body["metadata"]["name"] = name
    del body["metadata"]["namespace"]  # the test's own
    return body


def miss_events(operator: Operator) -> dict[str, dict[str, Any]]:
    return {
        e["involvedObject"]["name"]: e
        for e in operator.api.events()
        if e.get("reason") == "SidecarNotInjected"
    }


def test_pods_admitted_without_the_sidecar_get_an_event_and_are_counted(
    operator: Operator,
) -> None:
    api = operator.api
    # Went through the webhook: has the sidecar.
    _, injected = operator.hook.admit(pod("through-webhook", {}, labels=OPT_IN))
    api.create_pod(injected)
    api.create_pod(pod("not-asking", {"hotconf.dev/configmaps": "web-config"}))
    # Asks with the legacy annotation only: not selected by the operator's pod watch.
    api.create_pod(pod("annotation-only", {"hotconf.dev/inject": "true"}))
    # Admitted while the webhook was down: labelled, no sidecar.
    api.create_pod(pod("missed-running", {}, labels=OPT_IN))
    api.set_pod_status("missed-running", running_status("127.0.0.9"))  # as a kubelet would
    owned = pod("missed-pending", {}, labels=OPT_IN)  # Pending: no kubelet took it
    owned["metadata"]["ownerReferences"] = [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d8f", "uid": "rs-1"}
    ]
    api.create_pod(owned)

    events = wait_for("two SidecarNotInjected events", lambda: len(miss_events(operator)) == 2)
    events = miss_events(operator)
    assert set(events) == {"missed-running", "missed-pending"}
    for event in events.values():
        assert event["type"] == "Warning"
        assert event["involvedObject"]["kind"] == "Pod"
        assert "hotconf.dev/inject=true" in event["message"]
        assert "recreate" in event["message"]
    assert "ReplicaSet web-5d8f" in events["missed-pending"]["message"]
    wait_for("gauge at 2", lambda: operator.metric("hotconf_operator_pods_missing_sidecar") == 2)
    assert operator.metric("hotconf_operator_injection_misses_total") == 2

    api.delete_pod("missed-running")
    wait_for("gauge at 1", lambda: operator.metric("hotconf_operator_pods_missing_sidecar") == 1)
    # Each pod was reported once, whatever else happened to it meanwhile.
    assert operator.metric("hotconf_operator_injection_misses_total") == 2
    assert set(miss_events(operator)) == {"missed-running", "missed-pending"}


def test_every_pod_is_watched_with_the_migration_selector(
    tmp_path: Path, control_plane: Any, chart_release: Any, kube_namespace: str
) -> None:
    with running_operator(
        tmp_path, "--sidecar-image", "registry.example/hotconf:1", "--pod-selector", "*",
        control_plane=control_plane, release=chart_release, namespace=kube_namespace,
    ) as operator:  # fmt: skip
        operator.api.create_pod(pod("annotation-only", {"hotconf.dev/inject": "true"}))
        operator.api.create_pod(pod("labelled", {}, labels=OPT_IN))
        wait_for("two SidecarNotInjected events", lambda: len(miss_events(operator)) == 2)
        assert set(miss_events(operator)) == {"annotation-only", "labelled"}
