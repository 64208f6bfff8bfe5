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
- the HA chart installs with helm on the test control plane (CRDs first) and upgrades without
  touching the shared peering object; two real hotconf-operator processes given the installed
  Deployment's environment, authenticated as the chart's ServiceAccount, peer through the objects
  the chart created, cluster-wide and per namespace: the one of lower priority pauses, both
  records are in each object's status, and the API server's audit log shows they did it with
  only the chart's rights (nothing refused), using every verb granted on peerings (list, watch,
  patch of the one object) and no other cluster-scoped request when namespaced.
"""

from __future__ import annotations

import contextlib
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
from hotconf_e2e.chart import CHART, helm, install_chart
from kube_control_plane import ApiError

PEERING_KINDS = {"ClusterKopfPeering", "KopfPeering"}
HA_SCENARIOS = ["ha-values.yaml", "ha-namespaced-values.yaml"]


def render_ha(chart, scenario: str, *extra: str):
    return chart.render("--include-crds", "--values", str(chart.path / "ci" / scenario), *extra)


def operator_env(manifests) -> dict[str, str]:
    container = manifests.one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    # Literal values only: a scenario's extraEnv may add valueFrom ones.
    return {item["name"]: item["value"] for item in container["env"] if "value" in item}


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


def test_ha_release_installs_and_upgrades_unchanged(chart_release_ha, control_plane) -> None:
    # `helm install` with ci/ha-values.yaml (the session's chart_release_ha): CRDs from crds/
    # first, then the peering object, budget and Deployment, all accepted by the API server.
    admin, ns = control_plane.admin, chart_release_ha.namespace
    crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    for name in ("clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"):
        assert admin.request("GET", f"{crds}/{name}")["spec"]["group"] == "kopf.dev"
    peering = admin.request("GET", "/apis/kopf.dev/v1/clusterkopfpeerings/hotconf")
    admin.request("GET", f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets/hotconf-ha")
    deployment = admin.request("GET", f"/apis/apps/v1/namespaces/{ns}/deployments/hotconf-ha")
    assert deployment["spec"]["replicas"] == 3
    # An upgrade with the same values changes nothing that the replicas share.
    helm(control_plane.kubeconfig, "upgrade", chart_release_ha.name, str(CHART), "-n", ns,
         "-f", str(CHART / "ci" / "ha-values.yaml"), "--set", "webhook.enabled=false")  # fmt: skip
    again = admin.request("GET", "/apis/kopf.dev/v1/clusterkopfpeerings/hotconf")
    assert again["metadata"]["resourceVersion"] == peering["metadata"]["resourceVersion"]


def deployment_env(control_plane, release) -> dict[str, str]:
    """The operator container's literal env, as the installed Deployment holds it."""
    path = f"/apis/apps/v1/namespaces/{release.namespace}/deployments/{release.name}"
    container = control_plane.admin.request("GET", path)["spec"]["template"]["spec"]["containers"][
        0
    ]
    return {item["name"]: item["value"] for item in container["env"] if "value" in item}


def start_replica(env: dict[str, str], priority: int, log: Path) -> subprocess.Popen[bytes]:
    binary = Path(sys.executable).parent / "hotconf-operator"
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(binary), "--peering-priority", str(priority)], env=env, stdout=out, stderr=out
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


def records(control_plane, peerings: list[str]) -> dict[str, dict[str, Any]]:
    """Live replica records in each peering object (API paths): {"<path>/<id>": record}."""
    found = {}
    for path in peerings:
        body = control_plane.admin.request("GET", path)
        for replica, record in (body.get("status") or {}).items():
            if record and record.get("lifetime", 1) > 0:
                found[f"{path}/{replica}"] = record
    return found


@pytest.fixture
def ha_namespaced_release(control_plane):
    """ci/ha-namespaced-values.yaml installed: KopfPeerings in team-a and team-b."""
    for namespace in ("team-a", "team-b"):
        with contextlib.suppress(ApiError):  # another test of this session made them
            control_plane.create_namespace(namespace)
    return install_chart(
        control_plane,
        release="hotconf-team",
        namespace="hotconf-team",
        values_files=[CHART / "ci" / "ha-namespaced-values.yaml"],
        values={"webhook.enabled": "false"},
    )


@pytest.mark.parametrize("scenario", HA_SCENARIOS)
def test_two_replicas_peer_with_only_the_charts_rights(
    request, control_plane, tmp_path: Path, scenario: str
) -> None:
    release = request.getfixturevalue(
        "chart_release_ha" if scenario == "ha-values.yaml" else "ha_namespaced_release"
    )
    env = deployment_env(control_plane, release)
    name = env["HOTCONF_PEERING_NAME"]
    namespaces = [n for n in env.get("HOTCONF_NAMESPACES", "").split(",") if n]
    peerings = (
        [f"/apis/kopf.dev/v1/namespaces/{n}/kopfpeerings/{name}" for n in namespaces]
        if namespaces
        else [f"/apis/kopf.dev/v1/clusterkopfpeerings/{name}"]
    )
    # Two replicas with the installed Deployment's environment, authenticated as the chart's
    # ServiceAccount (a TokenRequest token): the API server enforces exactly the chart's RBAC.
    # Stand-ins for what only a cluster gives: a key file, free ports, no webhook; debug logs,
    # where kopf says that it pauses.
    key = tmp_path / "private.pem"
    make_key(key)
    kubeconfig = release.operator_kubeconfig(tmp_path / "kubeconfig")
    logs = [tmp_path / "replica-low.log", tmp_path / "replica-high.log"]
    procs: list[subprocess.Popen[bytes]] = []
    replica_env = {
        **env,
        "HOTCONF_SIGNING_KEY_FILE": str(key),
        "HOTCONF_WEBHOOK_PORT": "0",
        "HOTCONF_LOG_LEVEL": "debug",
        "PATH": os.environ["PATH"],
        "KUBECONFIG": str(kubeconfig),
    }
    replica_env.pop("HOTCONF_WEBHOOK_CERT_DIR", None)
    already = len(control_plane.audit_events(release.username))
    try:
        for priority, log in zip((10, 20), logs, strict=True):
            ports = {"HOTCONF_HEALTH_PORT": str(free_port())}
            ports["HOTCONF_METRICS_PORT"] = str(free_port())
            procs.append(start_replica({**replica_env, **ports}, priority, log))
            count = len(peerings) * len(procs)
            wait_for(f"{count} records", lambda n=count: len(records(control_plane, peerings)) >= n)
        wait_for(
            "the lower replica pauses",
            lambda: "Pausing operations in favour of" in logs[0].read_text(errors="replace"),
        )
        assert "Pausing operations" not in logs[1].read_text(errors="replace")
    finally:
        codes = [stop(proc) for proc in procs]
    assert codes == [0, 0], [log.read_text(errors="replace")[-3000:] for log in logs]
    # What the replicas asked, from the API server's audit log: nothing refused, every right on
    # peerings used, and nothing beyond them.
    asked = [e for e in control_plane.audit_events(release.username)[already:] if "objectRef" in e]
    refused = [(e["verb"], e["requestURI"]) for e in asked if e["responseStatus"]["code"] == 403]
    assert refused == []
    # Given namespaces, the operator makes no cluster-scoped request (kopf's scanning is off);
    # cluster-wide it never reads namespaces.
    if namespaces:
        assert [e["requestURI"] for e in asked if "namespace" not in e["objectRef"]] == []
    assert [e["requestURI"] for e in asked if e["objectRef"].get("resource") == "namespaces"] == []
    used = {(e["verb"], e["objectRef"].get("name")) for e in asked
            if e["objectRef"].get("apiGroup") == "kopf.dev"}  # fmt: skip
    assert {verb for verb, _ in used} == {"list", "watch", "patch"}
    assert {n for verb, n in used if verb == "patch"} == {name}
