"""The chart asks for as little as it can, in every scenario:
- every pod and container runs under the Kubernetes "restricted" profile (non-root numeric user,
  read-only root filesystem, no privilege escalation, all capabilities dropped, RuntimeDefault
  seccomp);
- RBAC has no wildcard, grants exactly the verbs the operator needs on exactly the resources it
  touches, binds only the operator's ServiceAccount, and in namespaced mode grants nothing
  cluster-wide but get and patch of the release's own MutatingWebhookConfiguration (its
  caBundle); Secrets only in the release namespace: get (and update of the certificate) by name
  on the operator's two Secrets, and create, which Kubernetes cannot limit by name; kopf's
  peering resources only with several replicas, patch only on the named peering object (details
  in test_chart_ha.py);
- selectors never carry the chart or app version (a Deployment selector is immutable)."""

from __future__ import annotations

from typing import Any

# What the operator may do; any other (group, resource) or verb is a failure.
ALLOWED = {
    ("", "configmaps"): {"get", "list", "watch", "patch"},
    ("", "pods"): {"get", "list", "watch"},
    ("", "events"): {"create", "patch"},
    # Each ConfigMap's revision history (no get, watch or update: lists, create, patch, prune).
    ("apps", "controllerrevisions"): {"list", "create", "patch", "delete"},
    ("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"},
}
# With several replicas only (ha-* scenarios): kopf peering. Patch is limited by resourceNames.
PEERING = {
    ("kopf.dev", "clusterkopfpeerings"): {"list", "watch", "patch"},
    ("kopf.dev", "kopfpeerings"): {"list", "watch", "patch"},
}
# The operator's own Secrets (signing key, webhook certificate), in the release namespace only.
OWN_SECRETS = {("", "secrets"): {"get", "create", "update"}}
# The caBundle of the release's own webhook configuration (get and patch by name only).
WEBHOOK_CONFIGURATION = {
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"): {"get", "patch"}
}
NAMESPACED_ONLY = {
    ("", "configmaps"),
    ("", "pods"),
    ("", "events"),
    ("apps", "controllerrevisions"),
}
VERSION_LABELS = {"helm.sh/chart", "app.kubernetes.io/version"}


def rules_of(manifests: Any, kind: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (role["metadata"]["name"], rule)
        for role in manifests.of_kind(kind)
        for rule in role["rules"]
    ]


def test_pods_run_restricted(chart, scenario: str) -> None:
    specs = chart.scenario(scenario).pod_specs()
    assert specs
    for name, spec in specs:
        pod = spec.get("securityContext", {})
        assert pod.get("runAsNonRoot") is True, name
        assert pod.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
        assert spec.get("hostNetwork") is not True and spec.get("hostPID") is not True, name
        for container in spec["containers"] + spec.get("initContainers", []):
            where = f"{name}/{container['name']}"
            sc = container.get("securityContext", {})
            user = sc.get("runAsUser", pod.get("runAsUser"))
            assert isinstance(user, int) and user > 0, f"{where}: numeric non-root user"
            assert sc.get("runAsNonRoot", pod.get("runAsNonRoot")) is True, where
            assert sc.get("readOnlyRootFilesystem") is True, where
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("privileged") is not True, where
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
            assert not sc.get("capabilities", {}).get("add"), where
            assert sc.get("seccompProfile", pod.get("seccompProfile")) == {"type": "RuntimeDefault"}


def test_rbac_grants_only_what_the_operator_needs(chart, scenario: str) -> None:
    manifests = chart.scenario(scenario)
    allowed_here = ALLOWED | PEERING if scenario.startswith("ha-") else ALLOWED
    allowed_here = allowed_here | OWN_SECRETS | WEBHOOK_CONFIGURATION
    for role, rule in rules_of(manifests, "ClusterRole") + rules_of(manifests, "Role"):
        if rule["resources"] == ["secrets"]:
            namespaces = {
                r["metadata"]["namespace"]
                for r in manifests.of_kind("Role")
                if r["metadata"]["name"] == role
            }
            assert namespaces == {chart.namespace}, f"{role}: Secrets elsewhere than the release's"
            # By name wherever Kubernetes allows it: create has no name to check.
            assert rule.get("resourceNames") or rule["verbs"] == ["create"], (role, rule)
        if rule["resources"] == ["mutatingwebhookconfigurations"]:
            assert rule["resourceNames"] == [manifests.one("Service")["metadata"]["name"]]
    for kind in ("ClusterRole", "Role"):
        for role, rule in rules_of(manifests, kind):
            assert "nonResourceURLs" not in rule, role
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], f"{kind} {role}: wildcard in {field}"
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    allowed = allowed_here.get((group, resource))
                    assert allowed is not None, f"{kind} {role}: no rights on {group}/{resource}"
                    extra = set(rule["verbs"]) - allowed
                    assert not extra, f"{kind} {role}: {resource} verbs {extra} not needed"


def test_rbac_binds_only_the_operator(chart, scenario: str) -> None:
    manifests = chart.scenario(scenario)
    deployment = manifests.one("Deployment")
    operator_sa = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    for kind in ("ClusterRoleBinding", "RoleBinding"):
        for binding in manifests.of_kind(kind):
            assert binding["subjects"] == [
                {"kind": "ServiceAccount", "name": operator_sa, "namespace": chart.namespace}
            ], f"{kind} {binding['metadata']['name']} binds someone else"
    # Application pods get nothing: the only pod running as a ServiceAccount with a token is the
    # operator; the helm test pod mounts no token.
    for pod in manifests.of_kind("Pod"):
        assert pod["spec"]["automountServiceAccountToken"] is False


def granted(manifests: Any, kind: str, name: str) -> dict[tuple[str, str], set[str]]:
    result: dict[tuple[str, str], set[str]] = {}
    for role, rule in rules_of(manifests, kind):
        if role == name:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    result.setdefault((group, resource), set()).update(rule["verbs"])
    return result


def test_cluster_wide_mode_has_one_cluster_role_with_every_rule(chart) -> None:
    manifests = chart.scenario("default-values.yaml")
    assert [r["metadata"]["name"] for r in manifests.of_kind("Role")] == ["hotconf-secrets"]
    assert granted(manifests, "Role", "hotconf-secrets") == OWN_SECRETS
    assert granted(manifests, "ClusterRole", "hotconf") == ALLOWED
    assert granted(manifests, "ClusterRole", "hotconf-webhook") == WEBHOOK_CONFIGURATION
    assert len(manifests.of_kind("ClusterRole")) == 2


def test_namespaced_mode_grants_nothing_cluster_wide(chart) -> None:
    manifests = chart.scenario("namespaced-values.yaml")
    # Cluster-wide only the caBundle of the release's own webhook configuration.
    assert [r["metadata"]["name"] for r in manifests.of_kind("ClusterRole")] == ["hotconf-webhook"]
    assert granted(manifests, "ClusterRole", "hotconf-webhook") == WEBHOOK_CONFIGURATION
    assert len(manifests.of_kind("ClusterRoleBinding")) == 1
    roles = [r for r in manifests.of_kind("Role") if r["metadata"]["name"] != "hotconf-secrets"]
    assert sorted(role["metadata"]["namespace"] for role in roles) == ["team-a", "team-b"]
    bindings = manifests.of_kind("RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == [
        "hotconf-system",
        "team-a",
        "team-b",
    ]
    for role in roles:
        rights = {
            (g, r) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
        }
        assert rights == NAMESPACED_ONLY


def test_no_rbac_objects_when_rbac_is_managed_elsewhere(chart) -> None:
    manifests = chart.scenario("no-webhook-values.yaml")
    kinds = {m["kind"] for m in manifests}
    assert not kinds & {
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "ServiceAccount",
    }


def test_selectors_carry_no_version(chart, scenario: str) -> None:
    manifests = chart.scenario(scenario)
    selectors = [("Deployment", manifests.one("Deployment")["spec"]["selector"]["matchLabels"])]
    selectors.append(("Service", manifests.one("Service")["spec"]["selector"]))
    for monitor in manifests.of_kind("ServiceMonitor"):
        selectors.append(("ServiceMonitor", monitor["spec"]["selector"]["matchLabels"]))
    pod_labels = manifests.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    for kind, selector in selectors:
        assert selector, kind
        assert not VERSION_LABELS & selector.keys(), f"{kind} selector carries a version"
        assert all(pod_labels.get(k) == v for k, v in selector.items()), f"{kind} selects no pod"


def test_selectors_do_not_change_with_the_version(chart) -> None:
    old = chart.render()
    new = chart.render("--set", "image.tag=9.9.9")
    assert old.one("Deployment")["spec"]["selector"] == new.one("Deployment")["spec"]["selector"]
    assert old.one("Service")["spec"]["selector"] == new.one("Service")["spec"]["selector"]
