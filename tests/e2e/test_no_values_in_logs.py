"""Nothing logs config values: after a valid rollout, a NACKed one and an invalid one, the
operator's, the sidecar's (at DEBUG) and the worker library's logs name ConfigMaps, revisions and
keys but never contain a value from the data."""

from __future__ import annotations

import json

import pytest
from hotconf_e2e import configmap_manifest, kubectl, pods, wait_for

pytestmark = pytest.mark.e2e

SECRET = "hunter2-do-not-log-me"


def patch(cluster, data: dict[str, str]) -> None:
    body = json.dumps({"data": data})
    kubectl(cluster.kubeconfig, "patch", "configmap", "app", "--type=merge", "-p", body)


def status(cluster) -> dict[str, object]:
    return cluster.api.status_of("app") or {}


def test_values_never_reach_the_logs(cluster, operator):
    manifest = configmap_manifest("app", {"value": "one", "db.yaml": f"pw: {SECRET}"})
    kubectl(cluster.kubeconfig, "apply", "-f", "-", stdin=manifest)
    options = {"public_key_pem": cluster.public_key_pem, "sidecar_log_level": "DEBUG"}
    with pods(cluster.api, cluster.workdir, 1, configmap="app", **options) as [pod]:
        wait_for("first config", lambda: (pod.current() or {}).get("value") == "one")
        # A NACKed revision (the worker's validate hook rejects it) ...
        patch(cluster, {"reject": "*", "note": f"{SECRET}-2"})
        wait_for("rejection", lambda: status(cluster).get("rejected") == 1)
        # ... and an invalid one (its YAML does not parse): the value sits next to the error.
        patch(cluster, {"reject": "", "db.yaml": f"pw: [{SECRET}-3\n"})
        wait_for("invalid", lambda: status(cluster).get("phase") == "invalid")
        logs = {
            "operator": operator.logs(),
            "sidecar": pod.logs("sidecar"),
            "worker": pod.logs("worker"),
        }
    assert [name for name, text in logs.items() if not text] == []
    for component, text in logs.items():
        assert SECRET not in text, f"{component} logged a config value"
