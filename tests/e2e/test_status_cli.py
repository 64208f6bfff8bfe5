"""``kubectl hotconf status`` on the real API server, logged in through an exec credential plugin.

Proves, as a user of EKS, GKE or AKS would run it: a kubeconfig whose user is an exec plugin (a
script printing an ExecCredential with a ServiceAccount token) authenticates, and the API server
sees that identity (audit log); the current context's namespace is the default, ``--context``
picks another context and its namespace, ``-A`` lists every namespace, ``--kubeconfig`` names
the file; an identity without the right to list ConfigMaps gets a clear error and exit status 1.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hotconf_e2e import BIN

pytestmark = pytest.mark.e2e


def status_annotation(revision: str) -> str:
    return json.dumps({"revision": revision, "phase": "complete", "applied": 1, "rejected": 0,
                       "pending": 0, "total": 1, "pod": "", "message": "",
                       "time": "2026-01-01T00:00:00Z"})  # fmt: skip


def put_configmap(cluster: Any, namespace: str, name: str, revision: str) -> None:
    cluster.api.request("POST", f"/api/v1/namespaces/{namespace}/configmaps", {
        "metadata": {"name": name, "labels": {"hotconf.dev/enabled": "true"},
                     "annotations": {"hotconf.dev/status": status_annotation(revision)}},
        "data": {"value": "x"},
    })  # fmt: skip


def exec_plugin(path: Path, token: str, marker: Path) -> Path:
    path.write_text(
        "#!/bin/sh\n"
        f"echo ran >> {marker}\n"
        "cat <<'EOF'\n"
        + json.dumps(
            {
                "apiVersion": "client.authentication.k8s.io/v1",
                "kind": "ExecCredential",
                "status": {"token": token},
            }
        )
        + "\nEOF\n"
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def viewer(cluster: Any, name: str, *, can_read: bool) -> str:
    """A ServiceAccount in the test's namespace, allowed to read ConfigMaps everywhere if
    ``can_read``; its token. (Not the built-in ``view`` role: it is an aggregated ClusterRole,
    filled by kube-controller-manager, which the test control plane does not run.)"""
    ns = cluster.namespace
    cluster.api.request("POST", f"/api/v1/namespaces/{ns}/serviceaccounts",
                        {"metadata": {"name": name}})  # fmt: skip
    if can_read:
        rbac = "/apis/rbac.authorization.k8s.io/v1"
        cluster.api.request("POST", f"{rbac}/clusterroles", {
            "metadata": {"name": f"{ns}-{name}"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"],
                       "verbs": ["get", "list"]}],
        })  # fmt: skip
        cluster.api.request("POST", f"{rbac}/clusterrolebindings", {
            "metadata": {"name": f"{ns}-{name}"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": f"{ns}-{name}"},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
        })  # fmt: skip
    return str(cluster.control_plane.create_token(ns, name))


def kubeconfig(cluster: Any, path: Path, plugin: Path, namespaces: dict[str, str]) -> Path:
    """Contexts named as ``namespaces`` keys, each in its namespace, all with the exec user."""
    base = json.loads(cluster.control_plane.kubeconfig_text(user={"exec": {
        "apiVersion": "client.authentication.k8s.io/v1", "command": str(plugin),
        "interactiveMode": "Never"}}))  # fmt: skip
    base["contexts"] = [
        {"name": name, "context": {"cluster": "test", "user": "test", "namespace": ns}}
        for name, ns in namespaces.items()
    ]
    base["current-context"] = next(iter(namespaces))
    path.write_text(json.dumps(base))
    return path


def status(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "kubectl-hotconf"), "status", *args], capture_output=True, text=True,
        env={**os.environ, **(env or {})}, timeout=60, check=False,
    )  # fmt: skip


def names(run: subprocess.CompletedProcess[str]) -> set[tuple[str, str]]:
    assert run.returncode == 0, run.stderr
    return {(row["namespace"], row["name"]) for row in json.loads(run.stdout)}


def test_status_with_an_exec_plugin_contexts_and_all_namespaces(
    cluster: Any, tmp_path: Path
) -> None:
    other = cluster.control_plane.create_namespace(prefix="status-other")
    try:
        put_configmap(cluster, cluster.namespace, "mine", "sha256:" + "1" * 64)
        put_configmap(cluster, other, "theirs", "sha256:" + "2" * 64)
        marker = tmp_path / "plugin-ran"
        plugin = exec_plugin(tmp_path / "get-token", viewer(cluster, "viewer", can_read=True),
                             marker)  # fmt: skip
        config = kubeconfig(cluster, tmp_path / "kubeconfig", plugin,
                            {"mine": cluster.namespace, "other": other})  # fmt: skip
        env = {"KUBECONFIG": str(config)}

        assert names(status("-o", "json", env=env)) == {(cluster.namespace, "mine")}
        assert marker.read_text().count("ran") >= 1  # the plugin gave the credentials
        assert names(status("-o", "json", "--context", "other", env=env)) == {(other, "theirs")}
        everywhere = names(status("-o", "json", "-A", env=env))
        assert {(cluster.namespace, "mine"), (other, "theirs")} <= everywhere
        table = status("--kubeconfig", str(config), "--context", "other")
        assert table.returncode == 0 and "theirs" in table.stdout, table.stderr
        # The API server saw the plugin's identity.
        who = f"system:serviceaccount:{cluster.namespace}:viewer"
        listed = [e for e in cluster.control_plane.audit_events(who) if e["verb"] == "list"]
        assert listed and all(e["responseStatus"]["code"] == 200 for e in listed)

        # An identity that may not list ConfigMaps: a clear error, exit status 1.
        plugin = exec_plugin(tmp_path / "get-weak-token", viewer(cluster, "nobody", can_read=False),
                             marker)  # fmt: skip
        weak = kubeconfig(cluster, tmp_path / "weak", plugin, {"mine": cluster.namespace})
        refused = status("--kubeconfig", str(weak))
        assert refused.returncode == 1, refused
        assert "403" in refused.stderr and "configmaps" in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr
    finally:
        cluster.control_plane.delete_namespace(other)
        rbac = "/apis/rbac.authorization.k8s.io/v1"
        for kind in ("clusterrolebindings", "clusterroles"):
            cluster.api.request("DELETE", f"{rbac}/{kind}/{cluster.namespace}-viewer")
