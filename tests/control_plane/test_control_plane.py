"""The test control plane is a real one: authentication, RBAC, TokenRequest, admission, storage.

Proves: kube-apiserver is ready and serves v1.37; anonymous requests are refused (401); a
ServiceAccount token from the TokenRequest API authenticates but has no rights until a Role
grants them (403, then 200); a token bound to a Secret stops working when the Secret goes (how
the rotation tests expire a token); kubectl 1.33 creates objects with protobuf; the admission
webhooks are enabled; a namespace per test is isolated; a second control plane starts and stops
without leaving a process behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from kube_control_plane import AdminClient, ApiError, ControlPlane
from kube_control_plane.pytest_plugin import require_binaries

REPO = Path(__file__).resolve().parents[2]
KUBECTL = REPO / ".tools" / "bin" / "kubectl-1.33"


def test_ready_and_versioned(control_plane: ControlPlane) -> None:
    version = control_plane.admin.request("GET", "/version")
    assert version["gitVersion"].startswith("v1.37"), version
    assert control_plane.admin.ok("/readyz")


def test_anonymous_is_refused(control_plane: ControlPlane) -> None:
    anonymous = AdminClient(control_plane.url, ca_cert=control_plane.pki.ca_cert)
    with pytest.raises(ApiError) as err:
        anonymous.request("GET", "/api/v1/namespaces/default/configmaps")
    assert err.value.status in (401, 403), err.value


def test_service_account_token_has_only_granted_rights(
    control_plane: ControlPlane, kube_namespace: str
) -> None:
    token = control_plane.create_token(kube_namespace, "default", seconds=600)
    user = control_plane.client(token)
    path = f"/api/v1/namespaces/{kube_namespace}/configmaps"
    with pytest.raises(ApiError) as err:
        user.request("GET", path)
    assert err.value.status == 403, err.value
    assert f"system:serviceaccount:{kube_namespace}:default" in str(err.value)
    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{kube_namespace}"
    control_plane.admin.request(
        "POST",
        f"{rbac}/roles",
        {
            "metadata": {"name": "read-cm"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}],
        },
    )
    control_plane.admin.request(
        "POST",
        f"{rbac}/rolebindings",
        {
            "metadata": {"name": "read-cm"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-cm"},
            "subjects": [
                {"kind": "ServiceAccount", "name": "default", "namespace": kube_namespace}
            ],
        },
    )
    assert user.request("GET", path)["items"] == []


def test_token_bound_to_a_secret_dies_with_it(
    control_plane: ControlPlane, kube_namespace: str
) -> None:
    control_plane.admin.request(
        "POST",
        f"/api/v1/namespaces/{kube_namespace}/secrets",
        {"metadata": {"name": "anchor"}, "data": {}},
    )
    token = control_plane.create_token(kube_namespace, "default", bound_secret="anchor")
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    path = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
    who = control_plane.client(token).request("POST", path, review)
    assert who["status"]["userInfo"]["username"].endswith(f"{kube_namespace}:default")
    control_plane.admin.request("DELETE", f"/api/v1/namespaces/{kube_namespace}/secrets/anchor")

    def refused() -> int | None:
        try:
            control_plane.client(token).request("POST", path, review)
        except ApiError as exc:
            return exc.status
        return None

    deadline = time.monotonic() + 30  # the API server looks the Secret up through its cache
    while (status := refused()) is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert status == 401, status


def test_kubectl_133_creates_with_protobuf(
    control_plane: ControlPlane, kube_namespace: str
) -> None:
    env = {**os.environ, "KUBECONFIG": str(control_plane.kubeconfig)}
    run = subprocess.run(
        [
            str(KUBECTL),
            "-n",
            kube_namespace,
            "create",
            "configmap",
            "made-by-kubectl",
            "--from-literal=a=b",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    got = control_plane.admin.request(
        "GET", f"/api/v1/namespaces/{kube_namespace}/configmaps/made-by-kubectl"
    )
    assert got["data"] == {"a": "b"}


def test_admission_webhooks_are_served(control_plane: ControlPlane) -> None:
    groups = control_plane.admin.request("GET", "/apis/admissionregistration.k8s.io/v1")
    names = {r["name"] for r in groups["resources"]}
    assert {"mutatingwebhookconfigurations", "validatingwebhookconfigurations"} <= names
    # A webhook the API server cannot reach, failurePolicy Fail: the API server really calls it.
    name = "unreachable.hotconf.test"
    control_plane.admin.request(
        "POST",
        "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
        {
            "metadata": {"name": "unreachable"},
            "webhooks": [
                {
                    "name": name,
                    "admissionReviewVersions": ["v1"],
                    "sideEffects": "None",
                    "failurePolicy": "Fail",
                    "timeoutSeconds": 2,
                    "clientConfig": {"url": "https://127.0.0.1:1/never"},
                    "rules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE"],
                            "resources": ["configmaps"],
                        }
                    ],
                    "objectSelector": {"matchLabels": {"hotconf-test": "unreachable-webhook"}},
                }
            ],
        },
    )
    try:
        with pytest.raises(ApiError) as err:
            control_plane.admin.request(
                "POST",
                "/api/v1/namespaces/default/configmaps",
                {"metadata": {"name": "x", "labels": {"hotconf-test": "unreachable-webhook"}}},
            )
        assert name in str(err.value), err.value
    finally:
        control_plane.admin.request(
            "DELETE",
            "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/unreachable",
        )


def test_a_control_plane_stops_without_leaks(tmp_path: Path) -> None:
    require_binaries()
    with ControlPlane(tmp_path) as cp:
        pids = [child.proc.pid for child in (cp._etcd, cp._apiserver) if child.proc]
        assert len(pids) == 2
        kubeconfig = json.loads(cp.kubeconfig.read_text())
        assert kubeconfig["clusters"][0]["cluster"]["server"] == cp.url
    for pid in pids:
        assert (
            not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
        )
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(cp.url + "/readyz", timeout=2)
