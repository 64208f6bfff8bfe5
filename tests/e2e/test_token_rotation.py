"""End to end: the operator's own ServiceAccount token rotates under it, and it keeps working.

The operator's kubeconfig names a ``tokenFile`` (as a projected token is a file the kubelet
rewrites). The test writes a token bound to a Secret, starts the operator, then writes a new
token and deletes the first one's Secret, so the API server refuses the old token (401) from
then on. Proves: the operator re-reads the file instead of exiting or failing: its own writes
(the status annotation) and kopf's (watches after a kube-apiserver restart, Events) go on with
the new token, a change after the rotation reaches the worker and its status is written.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from hotconf_e2e import configmap_manifest, kubectl, pods, wait_for
from kube_control_plane import ApiError

pytestmark = pytest.mark.e2e

REVIEW = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}


def bound_token(cluster: Any) -> tuple[str, str]:
    """A token of the chart's ServiceAccount that dies with its Secret: (token, secret name)."""
    release = cluster.release
    name = f"token-anchor-{uuid.uuid4().hex[:6]}"
    cluster.api.request("POST", f"/api/v1/namespaces/{release.namespace}/secrets",
                        {"metadata": {"name": name}})  # fmt: skip
    return release.token(bound_secret=name), name


def write_token(path: Path, token: str) -> None:
    tmp = path.with_suffix(".new")
    tmp.write_text(token)
    tmp.replace(path)  # atomically, as the kubelet swaps a projected volume


def refused(cluster: Any, token: str) -> bool:
    try:
        path = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
        cluster.control_plane.client(token).request("POST", path, REVIEW)
    except ApiError as exc:
        return exc.status == 401
    return False


def test_a_rotated_token_is_read_again(cluster: Any, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    old, old_secret = bound_token(cluster)
    write_token(token_file, old)
    kubeconfig = cluster.release.operator_kubeconfig(
        tmp_path / "rotating.kubeconfig", namespace=cluster.namespace, token_file=token_file
    )
    kubectl(cluster.kubeconfig, "apply", "-f", "-",
            stdin=configmap_manifest("app", {"value": "one"}))  # fmt: skip
    operator = cluster.operator(kubeconfig=kubeconfig)
    try:
        with pods(cluster.api, cluster.workdir, 1, configmap="app",
                  public_key_pem=cluster.public_key_pem) as [pod]:  # fmt: skip
            wait_for("first config", lambda: pod.current().get("value") == "one")
            wait_for("first status", lambda: (cluster.api.status_of("app") or {}).get("applied"))

            new, _ = bound_token(cluster)
            write_token(token_file, new)
            release_ns = cluster.release.namespace
            cluster.api.request("DELETE", f"/api/v1/namespaces/{release_ns}/secrets/{old_secret}")
            wait_for("the old token refused", lambda: refused(cluster, old), timeout=30)

            # The watches still run on connections opened with the old token; the status write
            # is a new request, refused with 401 until the operator reads the file again.
            cluster.api.patch_cm("app", {"data": {"value": "two"}})
            wait_for("two", lambda: pod.current().get("value") == "two")
            wait_for("status of two", lambda: (s := cluster.api.status_of("app"))
                     and s["revision"] == pod.current()["revision"]
                     and s["applied"] == 1)  # fmt: skip

            # New watch connections (after an API server restart) authenticate with the new
            # token too.
            with cluster.control_plane.apiserver_down():
                time.sleep(1)
            cluster.api.patch_cm("app", {"data": {"value": "three"}})
            wait_for("three", lambda: pod.current().get("value") == "three", timeout=60)
            assert operator.proc is not None and operator.proc.poll() is None
            assert "logging in again" in operator.logs()
            assert new not in operator.logs() and old not in operator.logs()
    finally:
        code = operator.stop()
    assert code == 0, operator.logs()[-4000:]
