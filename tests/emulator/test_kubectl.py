"""kubectl 1.20 (``.tools/bin/kubectl``) works against the emulator process.

Proves: ``create ns``; client-side ``apply`` creates, then reconfigures with a strategic merge
patch; ``apply`` of a multi-document manifest like a rendered Helm chart (Deployment,
ServiceAccount, ClusterRole, ClusterRoleBinding, Role, RoleBinding, Service, Secret,
MutatingWebhookConfiguration, Pod); ``get -o json`` with selectors; ``patch`` (merge, json,
strategic); ``delete``; a NotFound error as kubectl reports it; the repository's own chart,
rendered by helm, applies and re-applies unchanged.
"""

from __future__ import annotations

import json
import subprocess
import textwrap

import pytest
from kube_emulator.pytest_plugin import REPO, Kubectl, tool_path

CONFIGMAP = textwrap.dedent("""\
    apiVersion: v1
    kind: ConfigMap
    metadata:
      name: app
      namespace: team
      labels: {hotconf.dev/enabled: "true"}
    data: {level: info}
""")

CHART = textwrap.dedent("""\
    apiVersion: v1
    kind: ServiceAccount
    metadata: {name: hotconf, namespace: team}
    ---
    apiVersion: v1
    kind: Secret
    metadata: {name: hotconf-key, namespace: team}
    type: Opaque
    stringData: {private.pem: not-a-key}
    ---
    apiVersion: rbac.authorization.k8s.io/v1
    kind: ClusterRole
    metadata: {name: hotconf}
    rules:
      - apiGroups: [""]
        resources: [configmaps, pods]
        verbs: [get, list, watch, patch]
    ---
    apiVersion: rbac.authorization.k8s.io/v1
    kind: ClusterRoleBinding
    metadata: {name: hotconf}
    roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: hotconf}
    subjects: [{kind: ServiceAccount, name: hotconf, namespace: team}]
    ---
    apiVersion: rbac.authorization.k8s.io/v1
    kind: Role
    metadata: {name: hotconf, namespace: team}
    rules: [{apiGroups: [coordination.k8s.io], resources: [leases], verbs: ["*"]}]
    ---
    apiVersion: rbac.authorization.k8s.io/v1
    kind: RoleBinding
    metadata: {name: hotconf, namespace: team}
    roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: hotconf}
    subjects: [{kind: ServiceAccount, name: hotconf, namespace: team}]
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: hotconf-webhook, namespace: team}
    spec:
      selector: {app: hotconf}
      ports: [{name: https, port: 443, targetPort: 9443}]
    ---
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: hotconf, namespace: team, labels: {app: hotconf}}
    spec:
      replicas: 1
      selector: {matchLabels: {app: hotconf}}
      template:
        metadata: {labels: {app: hotconf}}
        spec:
          serviceAccountName: hotconf
          containers:
            - name: operator
              image: hotconf-operator:0.1.0
              ports: [{name: webhook, containerPort: 9443}]
    ---
    apiVersion: admissionregistration.k8s.io/v1
    kind: MutatingWebhookConfiguration
    metadata: {name: hotconf}
    webhooks:
      - name: inject.hotconf.dev
        admissionReviewVersions: [v1]
        sideEffects: None
        clientConfig:
          service: {name: hotconf-webhook, namespace: team, path: /inject}
        rules:
          - {apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods]}
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: hotconf-test, namespace: team, annotations: {helm.sh/hook: test}}
    spec:
      restartPolicy: Never
      containers: [{name: test, image: busybox, command: ["true"]}]
""")


def get_json(kubectl: Kubectl, *args: str) -> dict[str, object]:
    result: dict[str, object] = json.loads(kubectl("get", *args, "-o", "json").stdout)
    return result


def test_create_namespace_and_apply_configmap_twice(kubectl: Kubectl) -> None:
    assert "namespace/team created" in kubectl("create", "ns", "team").stdout
    assert "created" in kubectl("apply", "--validate=false", "-f", "-", input=CONFIGMAP).stdout
    changed = CONFIGMAP.replace("level: info", "level: debug, extra: x")
    assert "configured" in kubectl("apply", "--validate=false", "-f", "-", input=changed).stdout
    cm = get_json(kubectl, "cm", "app", "-n", "team")
    assert cm["data"] == {"level": "debug", "extra": "x"}
    meta = cm["metadata"]
    assert isinstance(meta, dict)
    assert "kubectl.kubernetes.io/last-applied-configuration" in meta["annotations"]
    assert meta["labels"] == {"hotconf.dev/enabled": "true"}


def test_apply_a_rendered_chart(kubectl: Kubectl) -> None:
    kubectl("create", "ns", "team")
    output = kubectl("apply", "--validate=false", "-f", "-", input=CHART).stdout
    for name in [
        "serviceaccount/hotconf",
        "secret/hotconf-key",
        "clusterrole.rbac.authorization.k8s.io/hotconf",
        "clusterrolebinding.rbac.authorization.k8s.io/hotconf",
        "role.rbac.authorization.k8s.io/hotconf",
        "rolebinding.rbac.authorization.k8s.io/hotconf",
        "service/hotconf-webhook",
        "deployment.apps/hotconf",
        "mutatingwebhookconfiguration.admissionregistration.k8s.io/hotconf",
        "pod/hotconf-test",
    ]:
        assert f"{name} created" in output
    again = kubectl("apply", "--validate=false", "-f", "-", input=CHART).stdout
    assert "deployment.apps/hotconf unchanged" in again
    upgraded = CHART.replace("hotconf-operator:0.1.0", "hotconf-operator:0.2.0")
    kubectl("apply", "--validate=false", "-f", "-", input=upgraded)
    deployment = get_json(kubectl, "deployment", "hotconf", "-n", "team")
    spec = deployment["spec"]
    assert isinstance(spec, dict)
    (container,) = spec["template"]["spec"]["containers"]
    assert container["image"] == "hotconf-operator:0.2.0"
    assert container["ports"] == [{"name": "webhook", "containerPort": 9443}]  # merged by name


def test_get_with_selector_patch_and_delete(kubectl: Kubectl) -> None:
    kubectl("create", "ns", "team")
    kubectl("apply", "--validate=false", "-f", "-", input=CONFIGMAP)
    other = CONFIGMAP.replace("name: app", "name: other").replace('"true"', '"false"')
    kubectl("apply", "--validate=false", "-f", "-", input=other)
    listed = get_json(kubectl, "cm", "-A", "-l", "hotconf.dev/enabled=true")
    items = listed["items"]
    assert isinstance(items, list)
    assert [item["metadata"]["name"] for item in items] == ["app"]

    kubectl("patch", "cm", "app", "-n", "team", "--type=merge", "-p", '{"data":{"a":"1"}}')
    kubectl("patch", "cm", "app", "-n", "team", "--type=json",
            "-p", '[{"op":"remove","path":"/data/level"}]')  # fmt: skip
    kubectl("patch", "cm", "app", "-n", "team", "-p", '{"data":{"b":"2"}}')  # strategic
    assert get_json(kubectl, "cm", "app", "-n", "team")["data"] == {"a": "1", "b": "2"}

    assert 'configmap "app" deleted' in kubectl("delete", "cm", "app", "-n", "team").stdout
    missing = kubectl("get", "cm", "app", "-n", "team", check=False)
    assert missing.returncode != 0
    assert 'configmaps "app" not found' in missing.stderr


def test_discovery_as_kubectl_sees_it(kubectl: Kubectl) -> None:
    resources = kubectl("api-resources", "--no-headers").stdout
    for line in ("configmaps", "leases", "mutatingwebhookconfigurations", "kopfpeerings"):
        assert line in resources


def test_apply_the_real_chart_twice(kubectl: Kubectl) -> None:
    chart = REPO / "charts" / "hotconf"
    if not chart.is_dir():
        pytest.skip(f"{chart} is not in this checkout")
    rendered = subprocess.run(
        [str(tool_path("helm")), "template", "hotconf", str(chart), "-n", "hotconf"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    kubectl("create", "ns", "hotconf")
    first = kubectl("apply", "--validate=false", "-n", "hotconf", "-f", "-", input=rendered)
    assert "deployment.apps/hotconf created" in first.stdout
    second = kubectl("apply", "--validate=false", "-n", "hotconf", "-f", "-", input=rendered)
    assert "created" not in second.stdout
    assert "deployment.apps/hotconf unchanged" in second.stdout
