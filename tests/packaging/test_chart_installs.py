"""Every ``ci/`` scenario of the chart installs on the real API server, and uninstalls.

Proves, for each scenario that needs no third-party CRDs: ``helm install`` succeeds against
kube-apiserver 1.37 (its validation, defaulting and RBAC escalation checks included: the chart's
ClusterRole is created by an admin, and a binding cannot grant more than its role); every
object of the release's manifest is then stored; ``helm uninstall`` removes every one of them
(the chart keeps nothing on purpose any more: the signing key and the webhook certificate are
Secrets the operator creates, outside the release, so they outlive it without an annotation).
The cert-manager and ServiceMonitor scenarios need cert-manager's and the Prometheus Operator's
CRDs, which this control plane does not have: they are rendered and schema-checked only
(``test_chart_renders.py``).
"""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from hotconf_e2e.chart import CHART, helm
from kube_control_plane import ApiError, ControlPlane

NEEDS_CRDS = {"cert-manager-values.yaml", "cert-manager-issuer-values.yaml",
              "servicemonitor-values.yaml"}  # fmt: skip
SCENARIOS = sorted(p.name for p in (CHART / "ci").glob("*.yaml") if p.name not in NEEDS_CRDS)

PLURALS = {"Secret": "secrets", "ServiceAccount": "serviceaccounts", "Service": "services",
           "Deployment": "deployments", "ClusterRole": "clusterroles", "Role": "roles",
           "ClusterRoleBinding": "clusterrolebindings", "RoleBinding": "rolebindings",
           "MutatingWebhookConfiguration": "mutatingwebhookconfigurations",
           "PodDisruptionBudget": "poddisruptionbudgets",
           "ClusterKopfPeering": "clusterkopfpeerings", "KopfPeering": "kopfpeerings",
           "Pod": "pods", "ConfigMap": "configmaps",
           "NetworkPolicy": "networkpolicies"}  # fmt: skip


def path_of(doc: dict[str, Any], release_namespace: str) -> str:
    group_version = doc["apiVersion"]
    base = f"/api/{group_version}" if "/" not in group_version else f"/apis/{group_version}"
    plural = PLURALS[doc["kind"]]
    namespaced = doc["kind"] not in {"ClusterRole", "ClusterRoleBinding", "ClusterKopfPeering",
                                     "MutatingWebhookConfiguration"}  # fmt: skip
    name = doc["metadata"]["name"]
    if namespaced:
        namespace = doc["metadata"].get("namespace", release_namespace)
        return f"{base}/namespaces/{namespace}/{plural}/{name}"
    return f"{base}/{plural}/{name}"


def exists(control_plane: ControlPlane, path: str) -> bool:
    try:
        control_plane.admin.request("GET", path)
    except ApiError as exc:
        if exc.status == 404:
            return False
        raise
    return True


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_installs_and_uninstalls(
    control_plane: ControlPlane, kube_namespace: str, scenario: str, tmp_path: Path
) -> None:
    values = yaml.safe_load((CHART / "ci" / scenario).read_text()) or {}
    for namespace in values.get("watchNamespaces", []):
        with contextlib.suppress(ApiError):  # shared by several scenarios of the session
            control_plane.create_namespace(namespace)
    release = f"s-{uuid.uuid4().hex[:6]}"
    # Cluster-scoped names must not meet another release of this session's: the peering object.
    args = ["install", release, str(CHART), "-n", kube_namespace,
            "-f", str(CHART / "ci" / scenario), "--set", f"peering.name={release}"]  # fmt: skip
    if values.get("fullnameOverride"):
        args += ["--set", f"fullnameOverride={release}-{values['fullnameOverride']}"]
    helm(control_plane.kubeconfig, *args)
    manifest = helm(control_plane.kubeconfig, "get", "manifest", release, "-n", kube_namespace)
    docs = [d for d in yaml.safe_load_all(manifest) if d]
    assert docs, manifest
    paths = {path_of(d, kube_namespace): d for d in docs}
    missing = [p for p in paths if not exists(control_plane, p)]
    assert missing == []

    helm(control_plane.kubeconfig, "uninstall", release, "-n", kube_namespace, "--wait")
    policy = "helm.sh/resource-policy"
    kept = {p for p, d in paths.items()
            if (d["metadata"].get("annotations") or {}).get(policy) == "keep"}  # fmt: skip
    left = {p for p in paths if exists(control_plane, p)}
    assert left == kept, (left, kept)
