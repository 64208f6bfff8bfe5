"""End to end: the operator's signing key from a Secret (``--signing-key-secret ns/name``).

Proves: with no such Secret the operator creates it (``private.pem`` and ``public.pem``) and signs
with that key, so sidecars given ``public.pem`` apply its pushes; a restarted operator reuses the
Secret instead of making a new key (no sidecar needs a new public key); an existing Secret's key
is the one used; a Secret holding garbage, another kind of key, or no ``private.pem`` stops the
operator at start-up with exit code 1 and a message naming the Secret, the key and the fix.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from hotconf_e2e import configmap_manifest, kubectl, make_key, pods, wait_for
from kube_control_plane import ApiError

pytestmark = pytest.mark.e2e

NAME = "hotconf-signing"


def secret_ref(cluster: Any) -> str:
    return f"{cluster.namespace}/{NAME}"


def grant_secret_rights(cluster: Any) -> None:
    """The chart mounts its key as a file and grants no Secret rights; an operator started with
    ``--signing-key-secret`` needs get and create on Secrets in that namespace (docs/operator.md).
    Give exactly those to the chart's ServiceAccount, in the test's namespace only."""
    rules = [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "create"]}]
    base = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{cluster.namespace}"
    cluster.api.request("POST", f"{base}/roles", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "signing-key"}, "rules": rules})  # fmt: skip
    cluster.api.request("POST", f"{base}/rolebindings", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "signing-key"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "signing-key"},
        "subjects": [{"kind": "ServiceAccount", "name": cluster.release.service_account,
                      "namespace": cluster.release.namespace}]})  # fmt: skip


def get_secret(cluster: Any) -> dict[str, Any] | None:
    try:
        result: dict[str, Any] = cluster.api.request(
            "GET", f"/api/v1/namespaces/{cluster.namespace}/secrets/{NAME}"
        )
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise
    return result


def put_secret(cluster: Any, data: dict[str, bytes]) -> None:
    namespace, name = cluster.namespace, NAME
    cluster.api.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
        },
    )


def values(ps: list[Any]) -> list[Any]:
    return [p.current().get("value") for p in ps]


def test_missing_secret_is_created_and_reused_after_restart(cluster: Any) -> None:
    grant_secret_rights(cluster)
    assert get_secret(cluster) is None
    op = cluster.operator(key_file=None, key_secret=secret_ref(cluster))
    try:
        secret = wait_for("the operator creates the Secret", lambda: get_secret(cluster))
        public_pem = base64.b64decode(secret["data"]["public.pem"]).decode()
        assert "PRIVATE KEY" in base64.b64decode(secret["data"]["private.pem"]).decode()
        assert public_pem != cluster.public_key_pem  # not the fixture's key file
        kubectl(cluster.kubeconfig, "apply", "-f", "-",
                stdin=configmap_manifest("app", {"value": "one"}))  # fmt: skip
        with pods(cluster.api, cluster.workdir, 2, configmap="app",
                  public_key_pem=public_pem) as ps:  # fmt: skip
            wait_for("Secret-signed pushes applied", lambda: values(ps) == ["one"] * 2)
            assert op.stop() == 0
            op = cluster.operator(key_file=None, key_secret=secret_ref(cluster))
            cluster.api.patch_cm("app", {"data": {"value": "two"}})
            # The sidecars still verify with the first public key: the Secret was reused.
            wait_for("after a restart, the same key", lambda: values(ps) == ["two"] * 2)
        again = get_secret(cluster)
        assert again is not None and again["data"] == secret["data"]
        assert "PRIVATE KEY" not in op.logs()  # key material never logged
    finally:
        assert op.stop() == 0, op.logs()[-3000:]


def test_existing_secret_key_is_used(cluster: Any, tmp_path: Path) -> None:
    grant_secret_rights(cluster)
    public_pem = make_key(tmp_path / "own.pem")
    put_secret(cluster, {"private.pem": (tmp_path / "own.pem").read_bytes()})
    op = cluster.operator(key_file=None, key_secret=secret_ref(cluster))
    try:
        kubectl(cluster.kubeconfig, "apply", "-f", "-",
                stdin=configmap_manifest("app", {"value": "one"}))  # fmt: skip
        with pods(cluster.api, cluster.workdir, 1, configmap="app",
                  public_key_pem=public_pem) as ps:  # fmt: skip
            wait_for("pushes signed with the Secret's key applied", lambda: values(ps) == ["one"])
        # The operator did not replace the Secret (no public.pem added, same private key).
        secret = get_secret(cluster)
        assert secret is not None and set(secret["data"]) == {"private.pem"}
    finally:
        assert op.stop() == 0, op.logs()[-3000:]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"private.pem": b"this is not a key\n"}, "does not hold an unencrypted PEM private key"),
        ({"other.pem": b"-----BEGIN PRIVATE KEY-----\n"}, "is missing; put a PEM Ed25519"),
        ("rsa", "not an Ed25519 key"),
    ],
    # Data that is not base64 cannot be stored: the API server refuses it (400), unlike the
    # emulator this test once ran on.
    ids=["garbage", "no-private-pem", "rsa-key"],
)
def test_secret_with_garbage_stops_the_operator(cluster: Any, data: Any, expected: str) -> None:
    grant_secret_rights(cluster)
    if data == "rsa":
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        data = {
            "private.pem": key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        }
    put_secret(cluster, data)
    op = cluster.operator(key_file=None, key_secret=secret_ref(cluster))
    assert op.proc is not None
    code = op.proc.wait(timeout=30)
    logs = op.logs()
    assert code == 1, logs
    assert f"Secret {secret_ref(cluster)} key private.pem" in logs, logs
    assert expected in logs, logs
    assert "openssl genpkey -algorithm ed25519" in logs or "put a PEM" in logs
    assert "Traceback" not in logs, logs
