"""End to end, all real processes: a ConfigMap change made with kubectl reaches every worker.

Proves: workers run the new value after `kubectl patch`; the status annotation counts them;
the ConfigMap carries no finalizer and no kopf annotation; an invalid ConfigMap reaches no pod
and produces a warning Event naming the key and line; a ConfigMap of about 1 MiB rolls out.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hotconf_e2e import Pod, configmap_manifest, kubectl, pods, wait_for

pytestmark = pytest.mark.e2e


def values(ps: list[Pod]) -> list[Any]:
    return [(p.current() or {}).get("value") for p in ps]


def assert_clean(cm: dict[str, Any]) -> None:
    meta = cm["metadata"]
    assert not meta.get("finalizers"), meta.get("finalizers")
    kopf_keys = [k for k in (meta.get("annotations") or {}) if "kopf" in k]
    assert kopf_keys == []


def test_patch_reaches_every_worker(cluster, operator):
    kubectl(cluster.kubeconfig, "apply", "-f", "-",
            stdin=configmap_manifest("app", {"value": "one", "app.yaml": "a: 1\n"}))  # fmt: skip
    with pods(cluster.api, cluster.workdir, 3, configmap="app",
              public_key_pem=cluster.public_key_pem) as ps:  # fmt: skip
        wait_for("first config in every worker", lambda: values(ps) == ["one"] * 3)
        kubectl(cluster.kubeconfig, "patch", "configmap", "app", "--type=merge",
                "-p", json.dumps({"data": {"value": "two"}}))  # fmt: skip
        wait_for("new value in every worker", lambda: values(ps) == ["two"] * 3)
        revision = ps[0].current()["revision"]
        # The workers can run the new revision before the operator has written its status
        # (written once every pod answered): until then the status still counts revision one.
        status = wait_for(
            "status applied 3/3",
            lambda: (
                (s := cluster.api.status_of("app"))
                and s["revision"] == revision
                and s["applied"] == 3
                and s
            ),
        )
        assert (status["phase"], status["total"], status["rejected"]) == ("complete", 3, 0)
        assert all(p.current()["generation"] == 2 for p in ps)
        assert_clean(cluster.api.get_cm("app"))
        # `kubectl hotconf status` (the plugin) tells the same story, as JSON and as a table.
        (row,) = json.loads(kubectl(cluster.kubeconfig, "hotconf", "status", "-o", "json"))
        assert (row["name"], row["revision"], row["applied"], row["total"]) == (
            "app",
            revision,
            3,
            3,
        )
        table = kubectl(cluster.kubeconfig, "hotconf", "status", "-n", cluster.namespace, "app")
        header, line = table.splitlines()
        assert header.split()[:9] == [
            "NAMESPACE",
            "NAME",
            "REVISION",
            "PHASE",
            "APPLIED",
            "HELD",
            "REJECTED",
            "PENDING",
            "TOTAL",
        ]
        assert line.split()[:9] == [
            cluster.namespace,
            "app",
            revision[7:19],
            "complete",
            "3",
            "0",
            "0",
            "0",
            "3",
        ]


def test_invalid_configmap_reaches_no_pod(cluster, operator):
    kubectl(cluster.kubeconfig, "apply", "-f", "-",
            stdin=configmap_manifest("app", {"value": "one", "app.yaml": "a: 1\n"}))  # fmt: skip
    with pods(cluster.api, cluster.workdir, 2, configmap="app",
              public_key_pem=cluster.public_key_pem) as ps:  # fmt: skip
        wait_for("first config", lambda: values(ps) == ["one"] * 2)
        good = ps[0].current()["revision"]
        bad = {"data": {"value": "broken", "app.yaml": "a: 1\nb: [unclosed\n"}}
        kubectl(cluster.kubeconfig, "patch", "configmap", "app", "--type=merge",
                "-p", json.dumps(bad))  # fmt: skip
        status = wait_for(
            "status invalid",
            lambda: (s := cluster.api.status_of("app")) and s["phase"] == "invalid" and s,
        )
        assert "app.yaml" in status["message"] and "line" in status["message"]
        events = wait_for(
            "ValidationFailed event",
            lambda: [e for e in cluster.api.events() if e.get("reason") == "ValidationFailed"],
        )
        assert events[0]["type"] == "Warning"
        assert events[0]["involvedObject"]["name"] == "app"
        assert "app.yaml, line" in events[0]["message"]
        # `kubectl describe` shows "From hotconf-operator", not the framework's name.
        assert events[0]["source"]["component"] == "hotconf-operator"
        assert events[0]["reportingComponent"] == "hotconf-operator"
        for pod in ps:
            held = pod.state()["configmaps"][0]
            assert held["revision"] == good
            assert pod.current()["value"] == "one" and pod.current()["generation"] == 1


def test_one_mebibyte_configmap_rolls_out(cluster, operator):
    kubectl(cluster.kubeconfig, "apply", "-f", "-",
            stdin=configmap_manifest("big", {"value": "small"}))  # fmt: skip
    with pods(cluster.api, cluster.workdir, 2, configmap="big",
              public_key_pem=cluster.public_key_pem) as ps:  # fmt: skip
        wait_for("first config", lambda: values(ps) == ["small"] * 2)
        blob = "".join(f"line {i:07d} " + "x" * 50 + "\n" for i in range(16_000))
        assert 1_000_000 < len(blob) < 1_048_000
        cluster.api.patch_cm("big", {"data": {"value": "big", "blob.txt": blob}})
        wait_for("1 MiB config in every worker", lambda: values(ps) == ["big"] * 2, timeout=30)
        wait_for(
            "status complete",
            lambda: (s := cluster.api.status_of("big")) and s["phase"] == "complete",
        )
        cm = cluster.api.get_cm("big")
        assert_clean(cm)
        # Nothing but the status annotation grew on the object: no copy of the data.
        written = {
            k: v for k, v in cm["metadata"]["annotations"].items() if k.startswith("hotconf")
        }
        assert list(written) == ["hotconf.dev/status"] and len(written["hotconf.dev/status"]) < 1024
