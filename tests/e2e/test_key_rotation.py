"""End to end: rotating the operator's signing key without restarting a workload.

Runs the procedure of ``docs/operator.md`` ("Rotating the signing key") with ``kubectl`` on the
real API: (1) add ``next.pem`` to the signing-key Secret and restart the operator, which keeps
signing with the old key and announces both; the reconcile sweep gives every pod the new trust
without a config change (``hotconf_operator_pods_trusting_keys`` and each pod's state show it);
(3) make ``next.pem`` the ``private.pem`` and restart: pods move their trust to the new key.
Proves that pods keep applying changes at every step, that no push is refused as
``bad_signature``, that no sidecar restarts (same processes), and that afterwards a push signed
with the old key is refused.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hotconf_e2e import configmap_manifest, kubectl, make_key, pods, sample, wait_for

from hotconf.testing import snapshot
from hotconf_operator._signing import Signer
from hotconf_wire.envelope import SIGNATURE_HEADER, PodRef, key_id

pytestmark = pytest.mark.e2e

PODS = 3
NAME = "hotconf-signing"


def grant_secret_rights(cluster: Any) -> None:
    """What ``--signing-key-secret`` needs (docs/operator.md): get and create on Secrets, given
    to the chart's ServiceAccount in the test's namespace only (as test_signing_secret does)."""
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


def raw_id(pem: str) -> str:
    key = serialization.load_pem_public_key(pem.encode())
    assert isinstance(key, Ed25519PublicKey)
    return key_id(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def values(ps: list[Any]) -> list[Any]:
    return [p.current().get("value") for p in ps]


def trusted(ps: list[Any]) -> list[list[str]]:
    return [sorted(p.state().get("trusted", [])) for p in ps]


def bad_signatures(ps: list[Any]) -> float:
    total = 0.0
    for p in ps:
        total += (
            sample(p.metrics(), "hotconf_sidecar_pushes_rejected_total", reason="bad_signature")
            or 0
        )
    return total


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def test_rotation_keeps_every_pod_applying_and_then_refuses_the_old_key(
    cluster: Any, tmp_path: Path
) -> None:
    grant_secret_rights(cluster)
    old_pem, new_pem = make_key(tmp_path / "old.pem"), make_key(tmp_path / "new.pem")
    old, new = raw_id(old_pem), raw_id(new_pem)
    kube = cluster.kubeconfig
    kubectl(
        kube, "create", "secret", "generic", NAME, f"--from-file=private.pem={tmp_path}/old.pem"
    )
    secret = f"{cluster.namespace}/{NAME}"
    op = cluster.operator(key_file=None, key_secret=secret)
    try:
        kubectl(kube, "apply", "-f", "-", stdin=configmap_manifest("app", {"value": "one"}))
        with pods(
            cluster.api, cluster.workdir, PODS, configmap="app", public_key_pem=old_pem
        ) as ps:
            wait_for(
                "pods apply pushes signed with the old key", lambda: values(ps) == ["one"] * PODS
            )
            pids = [p.sidecar.pid if p.sidecar else None for p in ps]

            # Step 1: next.pem joins the Secret; the operator restarts and announces both keys.
            patch = {"data": {"next.pem": b64(tmp_path / "new.pem")}}
            kubectl(kube, "patch", "secret", NAME, "--type", "merge", "-p", json.dumps(patch))
            assert op.stop() == 0, op.logs()[-3000:]
            op = cluster.operator(key_file=None, key_secret=secret)
            # No config change: the sweep alone carries the new trust to every pod.
            wait_for(
                "every pod trusts both keys", lambda: trusted(ps) == [sorted([old, new])] * PODS
            )
            wait_for(
                "the operator counts every pod as trusting the announced keys",
                lambda: op.metric("hotconf_operator_pods_trusting_keys") == PODS,
            )
            cluster.api.patch_cm("app", {"data": {"value": "two"}})
            wait_for(
                "pods apply a change while both keys are trusted",
                lambda: values(ps) == ["two"] * PODS,
            )

            # Step 3: next.pem becomes private.pem, the old key is dropped; restart again.
            ops = [
                {"op": "replace", "path": "/data/private.pem", "value": b64(tmp_path / "new.pem")},
                {"op": "remove", "path": "/data/next.pem"},
            ]
            kubectl(kube, "patch", "secret", NAME, "--type", "json", "-p", json.dumps(ops))
            assert op.stop() == 0, op.logs()[-3000:]
            op = cluster.operator(key_file=None, key_secret=secret)
            wait_for("every pod trusts only the new key", lambda: trusted(ps) == [[new]] * PODS)
            cluster.api.patch_cm("app", {"data": {"value": "three"}})
            wait_for(
                "pods apply a change signed with the new key",
                lambda: values(ps) == ["three"] * PODS,
            )

            assert bad_signatures(ps) == 0
            assert [p.sidecar.pid if p.sidecar else None for p in ps] == pids
            assert all(p.sidecar is not None and p.sidecar.poll() is None for p in ps)

            # Step 4: a push signed with the old key is refused.
            retired = Signer.from_pem((tmp_path / "old.pem").read_bytes(), source="old.pem")
            target = ps[0]
            state = target.state()
            signed = retired.sign_push(
                PodRef(target.namespace, target.name, target.uid),
                snapshot({"value": "four"}, namespace=target.namespace, name="app"),
            )
            request = urllib.request.Request(
                f"http://{target.ip}:{target.port}/v2/push",
                data=signed.body,
                headers={SIGNATURE_HEADER: signed.signature, "Content-Type": "application/json"},
                method="POST",
            )
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=5)
            assert refused.value.code == 401
            assert json.loads(refused.value.read())["error"]["reason"] == "bad_signature"
            time.sleep(0.2)
            assert target.state()["configmaps"] == state["configmaps"]
            assert values(ps) == ["three"] * PODS
        assert "PRIVATE KEY" not in op.logs()
    finally:
        assert op.stop() == 0, op.logs()[-3000:]
