"""High availability in the chart: replicaCount > 1 renders kopf peering, and 1 renders none of it.

Proves, for the ha-* scenarios in charts/hotconf/ci/:
- crds/ holds kopf's two peering CRDs (group kopf.dev, v1, the scopes kopf expects, no status
  subresource, so the rights below suffice), and the peering object the chart creates is of the
  kind kopf uses for this scope (ClusterKopfPeering cluster-wide, a KopfPeering in each watched
  namespace), named like HOTCONF_PEERING_NAME;
- the operator's rights on peerings are list and watch on the resource and patch on that one
  object only, cluster-wide or per watched namespace as the chart scopes its other rights;
- the Deployment runs the replicas with standalone off, rolls them one at a time, spreads them
  over nodes (preferred anti-affinity by hostname, selecting its own pods) and keeps the user's
  affinity; a PodDisruptionBudget keeps one of them through voluntary disruptions;
- with replicaCount 1 (every other scenario, and an ha-* scenario with replicaCount set back to
  1) none of it is rendered: no peering object, rights, budget or anti-affinity, standalone on;
- the HA render, CRDs first, applies to the emulated API with kubectl (twice, unchanged), and
  two real hotconf-operator processes given the rendered environment peer through the object the
  chart created: the one of lower priority pauses, both records are in the object's status.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hotconf_e2e import free_port, make_key

PEERING_KINDS = {"ClusterKopfPeering", "KopfPeering"}
HA_SCENARIOS = ["ha-values.yaml", "ha-namespaced-values.yaml"]
KOPF_RESOURCES = {"clusterkopfpeerings", "kopfpeerings"}


def render_ha(chart, scenario: str, *extra: str):
    return chart.render("--include-crds", "--values", str(chart.path / "ci" / scenario), *extra)


def operator_env(manifests) -> dict[str, str]:
    container = manifests.one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    return {item["name"]: item["value"] for item in container["env"]}


def peering_rules(manifests) -> list[tuple[str, str | None, dict[str, Any]]]:
    """Every RBAC rule on kopf.dev: (role kind, role namespace, rule)."""
    return [
        (role["kind"], role["metadata"].get("namespace"), rule)
        for role in manifests.of_kind("ClusterRole") + manifests.of_kind("Role")
        for rule in role["rules"]
        if "kopf.dev" in rule["apiGroups"]
    ]


def crds(chart) -> dict[str, dict[str, Any]]:
    found = {}
    for path in sorted((chart.path / "crds").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                found[doc["spec"]["names"]["kind"]] = doc
    return found


def test_crds_are_kopfs_peering_resources(chart) -> None:
    found = crds(chart)
    assert set(found) == PEERING_KINDS
    expected = {
        "ClusterKopfPeering": ("clusterkopfpeerings", "Cluster"),
        "KopfPeering": ("kopfpeerings", "Namespaced"),
    }
    for kind, crd in found.items():
        plural, scope = expected[kind]
        spec = crd["spec"]
        assert crd["metadata"]["name"] == f"{plural}.kopf.dev"
        assert (spec["group"], spec["names"]["plural"], spec["scope"]) == (
            "kopf.dev",
            plural,
            scope,
        )
        (version,) = spec["versions"]
        assert (version["name"], version["served"], version["storage"]) == ("v1", True, True)
        # kopf merge-patches the status on the object: no status subresource, or patch on the
        # object would not reach it (and the rights would need <plural>/status).
        assert "subresources" not in version
        status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
        assert status["x-kubernetes-preserve-unknown-fields"] is True


@pytest.mark.parametrize("scenario", HA_SCENARIOS)
def test_ha_render_has_crds_and_the_peering_object_kopf_uses(chart, scenario: str) -> None:
    manifests = render_ha(chart, scenario)
    rendered_crds = {
        c["spec"]["names"]["kind"] for c in manifests.of_kind("CustomResourceDefinition")
    }
    assert rendered_crds == PEERING_KINDS  # from crds/, with --include-crds
    env = operator_env(manifests)
    name = env["HOTCONF_PEERING_NAME"]
    watched = [n for n in env.get("HOTCONF_NAMESPACES", "").split(",") if n]
    peerings = [m for m in manifests if m["apiVersion"] == "kopf.dev/v1"]
    if watched:
        assert name == "hotconf-team"
        assert {m["kind"] for m in peerings} == {"KopfPeering"}
        assert sorted(m["metadata"]["namespace"] for m in peerings) == sorted(watched)
    else:
        assert name == "hotconf"
        assert [m["kind"] for m in peerings] == ["ClusterKopfPeering"]
        assert "namespace" not in peerings[0]["metadata"]
    assert {m["metadata"]["name"] for m in peerings} == {name}
    assert all("status" not in m for m in peerings)  # the status is kopf's


@pytest.mark.parametrize("scenario", HA_SCENARIOS)
def test_ha_rights_on_peerings_are_list_watch_and_patch_of_one_object(chart, scenario: str) -> None:
    manifests = render_ha(chart, scenario)
    env = operator_env(manifests)
    watched = sorted(n for n in env.get("HOTCONF_NAMESPACES", "").split(",") if n)
    rules = peering_rules(manifests)
    if watched:
        where = {(kind, namespace) for kind, namespace, _ in rules}
        assert where == {("Role", namespace) for namespace in watched}
        resource = "kopfpeerings"
    else:
        assert {(kind, namespace) for kind, namespace, _ in rules} == {("ClusterRole", None)}
        resource = "clusterkopfpeerings"
    per_role: dict[str | None, list[tuple[tuple[str, ...], tuple[str, ...]]]] = {}
    for _, namespace, rule in rules:
        assert rule["apiGroups"] == ["kopf.dev"] and rule["resources"] == [resource]
        per_role.setdefault(namespace, []).append(
            (tuple(sorted(rule["verbs"])), tuple(rule.get("resourceNames", ())))
        )
    for namespace, granted in per_role.items():
        assert sorted(granted) == [
            (("list", "watch"), ()),
            (("patch",), (env["HOTCONF_PEERING_NAME"],)),
        ], namespace


@pytest.mark.parametrize("scenario", HA_SCENARIOS)
def test_ha_deployment_peers_rolls_and_spreads(chart, scenario: str) -> None:
    manifests = render_ha(chart, scenario)
    deployment = manifests.one("Deployment")
    spec = deployment["spec"]
    expected_replicas = 3 if scenario == "ha-values.yaml" else 2
    assert spec["replicas"] == expected_replicas
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    assert operator_env(manifests)["HOTCONF_STANDALONE"] == "false"
    selector = spec["selector"]["matchLabels"]
    affinity = spec["template"]["spec"]["affinity"]
    (term,) = affinity["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"] == {
        "topologyKey": "kubernetes.io/hostname",
        "labelSelector": {"matchLabels": selector},
    }
    assert "requiredDuringSchedulingIgnoredDuringExecution" not in affinity["podAntiAffinity"]
    if scenario == "ha-values.yaml":  # the user's node affinity is kept beside it
        assert affinity["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    budget = manifests.one("PodDisruptionBudget")
    assert budget["metadata"]["namespace"] == chart.namespace
    assert budget["spec"] == {"minAvailable": 1, "selector": {"matchLabels": selector}}
    pod_labels = spec["template"]["metadata"]["labels"]
    assert all(pod_labels[k] == v for k, v in selector.items())


def test_an_own_pod_anti_affinity_replaces_the_default(chart) -> None:
    own = {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {
                "topologyKey": "topology.kubernetes.io/zone",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "hotconf"}},
            }
        ]
    }
    manifests = chart.render(
        "--set", "replicaCount=2",
        "--set-json", "affinity=" + json.dumps({"podAntiAffinity": own}),
    )  # fmt: skip
    affinity = manifests.one("Deployment")["spec"]["template"]["spec"]["affinity"]
    assert affinity == {"podAntiAffinity": own}


def assert_standalone_only(manifests) -> None:
    assert not [m for m in manifests if m["apiVersion"].startswith("kopf.dev/")]
    assert not manifests.of_kind("CustomResourceDefinition")
    assert not manifests.of_kind("PodDisruptionBudget")
    assert not peering_rules(manifests)
    deployment = manifests.one("Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert "podAntiAffinity" not in deployment["spec"]["template"]["spec"].get("affinity", {})
    env = operator_env(manifests)
    assert env["HOTCONF_STANDALONE"] == "true"
    assert "HOTCONF_PEERING_NAME" not in env


def test_one_replica_renders_no_peering(chart, scenario: str) -> None:
    if scenario in HA_SCENARIOS:
        # The same values with one replica: the gate is replicaCount, not the scenario.
        manifests = chart.scenario(scenario)
        assert_standalone_only(
            chart.render("--values", str(chart.path / "ci" / scenario), "--set", "replicaCount=1")
        )
        assert manifests.of_kind("PodDisruptionBudget")  # and the scenario itself is HA
        return
    assert_standalone_only(chart.scenario(scenario))


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("replicaCount=0", "/replicaCount"),
        ("peering.name=Not_A_Name", "/peering/name"),
        ("peering.bogus=1", "additional properties 'bogus' not allowed"),
    ],
)
def test_bad_ha_values_fail(chart, setting: str, complaint: str) -> None:
    result = chart.template("--set", setting)
    assert result.returncode != 0, f"helm template accepted --set {setting}"
    assert complaint in result.stderr


def test_ha_render_applies_to_the_emulated_api(chart, kubectl) -> None:
    result = chart.template("--include-crds", "--values", str(chart.path / "ci" / "ha-values.yaml"))
    assert result.returncode == 0, result.stderr
    kubectl("create", "ns", chart.namespace)
    args = ("apply", "--validate=false", "-n", chart.namespace, "-f", "-")
    first = kubectl(*args, input=result.stdout).stdout
    for name in (
        "customresourcedefinition.apiextensions.k8s.io/clusterkopfpeerings.kopf.dev",
        "customresourcedefinition.apiextensions.k8s.io/kopfpeerings.kopf.dev",
        "clusterkopfpeering.kopf.dev/hotconf",
        "poddisruptionbudget.policy/hotconf",
        "deployment.apps/hotconf",
    ):
        assert f"{name} created" in first, first
    second = kubectl(*args, input=result.stdout).stdout
    assert "created" not in second, second
    assert "clusterkopfpeering.kopf.dev/hotconf unchanged" in second


@pytest.fixture
def ha_cluster(chart, kubectl, kube_emulator_process, tmp_path: Path):
    """The HA render (cluster-wide) applied to a fresh emulator; returns (manifests, kubeconfig)."""
    values = str(chart.path / "ci" / "ha-values.yaml")
    result = chart.template("--include-crds", "--values", values)
    assert result.returncode == 0, result.stderr
    kubectl("create", "ns", chart.namespace)
    kubectl("apply", "--validate=false", "-n", chart.namespace, "-f", "-", input=result.stdout)
    return chart.render("--include-crds", "--values", values), kube_emulator_process.kubeconfig


def start_replica(env: dict[str, str], priority: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                str(Path(sys.executable).parent / "hotconf-operator"),
                "--peering-priority",
                str(priority),
            ],
            env=env,
            stdout=out,
            stderr=out,
        )


def stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def wait_for(what: str, check, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for: {what}")


def test_two_replicas_peer_through_the_object_the_chart_created(
    ha_cluster, kubectl, tmp_path: Path
) -> None:
    manifests, kubeconfig = ha_cluster
    env = operator_env(manifests)
    # The rendered environment, with what only a cluster provides swapped for local stand-ins:
    # a key file, free ports, no webhook (no certificate here), the emulator's kubeconfig; and
    # debug logs, where kopf says that it pauses.
    key = tmp_path / "private.pem"
    make_key(key)
    logs = [tmp_path / "replica-low.log", tmp_path / "replica-high.log"]
    procs = []
    try:
        for priority, log in zip((10, 20), logs, strict=True):
            replica_env = {
                **env,
                "HOTCONF_SIGNING_KEY_FILE": str(key),
                "HOTCONF_HEALTH_PORT": str(free_port()),
                "HOTCONF_METRICS_PORT": str(free_port()),
                "HOTCONF_WEBHOOK_PORT": "0",
                "HOTCONF_LOG_LEVEL": "debug",
                "PATH": os.environ["PATH"],
                "KUBECONFIG": str(kubeconfig),
            }
            replica_env.pop("HOTCONF_WEBHOOK_CERT_DIR")
            procs.append(start_replica(replica_env, priority, log))
            if priority == 10:
                wait_for("the first replica's record", lambda: len(records(kubectl)) == 1)
        wait_for("both records", lambda: len(records(kubectl)) == 2)
        wait_for(
            "the lower replica pauses",
            lambda: "Pausing operations in favour of" in logs[0].read_text(errors="replace"),
        )
        assert "Pausing operations" not in logs[1].read_text(errors="replace")
        assert sorted(r["priority"] for r in records(kubectl).values()) == [10, 20]
    finally:
        codes = [stop(proc) for proc in procs]
    assert codes == [0, 0], [log.read_text(errors="replace")[-3000:] for log in logs]


def records(kubectl) -> dict[str, Any]:
    peering = yaml.safe_load(kubectl("get", "clusterkopfpeering", "hotconf", "-o", "yaml").stdout)
    status: dict[str, Any] = peering.get("status") or {}
    return {k: v for k, v in status.items() if v and v.get("lifetime", 1) > 0}
