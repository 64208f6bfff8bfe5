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

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hotconf_e2e import KUBECTL, configmap_manifest, kubectl, make_key, pods, sample, wait_for

from hotconf.testing import snapshot
from hotconf_operator._signing import Signer
from hotconf_wire.envelope import SIGNATURE_HEADER, PodRef, key_id

pytestmark = pytest.mark.e2e

PODS = 3
NAME = "hotconf-signing"

# The commands of docs/operator.md ("Rotating the signing key"), run verbatim by bash.
ADD_NEXT = """\
openssl genpkey -algorithm ed25519 -out next.pem
kubectl -n "$NS" patch secret "$SECRET" --type merge \\
  -p "{\\"data\\":{\\"next.pem\\":\\"$(base64 -w0 next.pem)\\"}}"
rm next.pem
"""
PROMOTE_NEXT = """\
kubectl -n "$NS" get secret "$SECRET" -o jsonpath='{.data.next\\.pem}' | base64 -d > next.pem
kubectl -n "$NS" create secret generic "$SECRET" --from-file=private.pem=next.pem \\
  --dry-run=client -o yaml | kubectl -n "$NS" replace -f -
rm next.pem
"""
KEY_ID = """\
kubectl -n "$NS" get secret "$SECRET" -o jsonpath='{.data.next\\.pem}' | base64 -d \\
  | openssl pkey -pubout -outform DER | tail -c 32 | sha256sum | cut -c1-16
"""


def run_documented(script: str, *, cluster: Any, workdir: Path) -> str:
    """Run a documented command block with bash, kubectl on PATH, the test's namespace."""
    doc = (Path(__file__).parents[2] / "docs" / "operator.md").read_text()
    assert script in doc, f"docs/operator.md no longer shows:\n{script}"
    bindir = workdir / "bin"
    bindir.mkdir(exist_ok=True)
    if not (bindir / "kubectl").exists():
        (bindir / "kubectl").symlink_to(KUBECTL)
    env = {
        **os.environ,
        "KUBECONFIG": str(cluster.kubeconfig),
        "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
        "NS": cluster.namespace,
        "SECRET": NAME,
    }
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"{script} failed: {done.stderr}{done.stdout}"
    return done.stdout


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


def test_rotation_keeps_every_pod_applying_and_then_refuses_the_old_key(
    cluster: Any, tmp_path: Path
) -> None:
    grant_secret_rights(cluster)
    old_pem = make_key(tmp_path / "old.pem")
    old = raw_id(old_pem)
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
            run_documented(ADD_NEXT, cluster=cluster, workdir=tmp_path)
            new = run_documented(KEY_ID, cluster=cluster, workdir=tmp_path).strip()
            assert len(new) == 16 and new != old
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
            run_documented(PROMOTE_NEXT, cluster=cluster, workdir=tmp_path)
            data = cluster.api.request(
                "GET", f"/api/v1/namespaces/{cluster.namespace}/secrets/{NAME}"
            )["data"]
            assert set(data) == {"private.pem"}
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
