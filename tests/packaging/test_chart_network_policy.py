"""networkPolicy: the operator pod's NetworkPolicy lets in what calls it (the API server on the
webhook port, Prometheus on the metrics port, the helm test pod on the health port) and lets out
what it calls (the API server, DNS, and every pod's push port, sidecar.port); the optional
per-namespace policy admits exactly the operator to the pods the webhook injected, on that port.
None of it renders by default. Installed on the real API server by test_chart_installs.py
(full-values.yaml and namespaced-values.yaml)."""

from __future__ import annotations

from typing import Any

from hotconf_operator._injection import INJECT_ANNOTATION, InjectionSettings, injected_copy


def policies(manifests) -> dict[str, dict[str, Any]]:
    return {p["metadata"]["namespace"]: p for p in manifests.of_kind("NetworkPolicy")}


def ports(rule: dict[str, Any]) -> set[tuple[int, str]]:
    return {(p["port"], p["protocol"]) for p in rule.get("ports", [])}


def test_no_network_policy_by_default(chart) -> None:
    assert not chart.scenario("default-values.yaml").of_kind("NetworkPolicy")


def test_operator_policy_opens_its_ports_and_the_push_port(chart) -> None:
    manifests = chart.render(
        "--set", "networkPolicy.enabled=true", "--set", "sidecar.port=8800",
        "--set", "ports.metrics=9100",
    )  # fmt: skip
    policy = policies(manifests)[chart.namespace]
    deployment = manifests.one("Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector == deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    container_ports = {
        p["name"]: p["containerPort"]
        for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
    }
    ingress = set().union(*(ports(rule) for rule in policy["spec"]["ingress"]))
    assert ingress == {(container_ports[n], "TCP") for n in ("webhook", "metrics", "health")}
    egress = policy["spec"]["egress"]
    push = [rule for rule in egress if (8800, "TCP") in ports(rule)]
    assert push == [
        {"to": [{"namespaceSelector": {}}], "ports": [{"port": 8800, "protocol": "TCP"}]}
    ]
    assert any({(443, "TCP"), (6443, "TCP")} <= ports(rule) for rule in egress)
    assert any((53, "UDP") in ports(rule) for rule in egress)


def test_operator_policy_narrows_to_given_peers(chart) -> None:
    policy = policies(chart.scenario("full-values.yaml"))[chart.namespace]
    (api,) = [r for r in policy["spec"]["egress"] if (6443, "TCP") in ports(r)]
    assert api["to"] == [{"ipBlock": {"cidr": "10.96.0.1/32"}},
                         {"ipBlock": {"cidr": "192.168.10.0/24"}}]  # fmt: skip
    (metrics,) = [r for r in policy["spec"]["ingress"] if (9090, "TCP") in ports(r)]
    assert metrics["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"
    }


def test_sidecar_policy_admits_the_operator_to_what_the_webhook_injected(chart) -> None:
    manifests = chart.scenario("namespaced-values.yaml")
    found = policies(manifests)
    assert set(found) == {chart.namespace, "team-a", "team-b"}
    injected = injected_copy(
        {"metadata": {"annotations": {INJECT_ANNOTATION: "true"}}, "spec": {"containers": []}},
        InjectionSettings(image="hotconf:1", public_key_pem="PEM"),
    )
    operator_labels = manifests.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    for namespace in ("team-a", "team-b"):
        spec = found[namespace]["spec"]
        assert spec["podSelector"]["matchLabels"].items() <= injected["metadata"]["labels"].items()
        assert spec["policyTypes"] == ["Ingress"]
        (rule,) = spec["ingress"]
        assert ports(rule) == {(8790, "TCP")}
        (peer,) = rule["from"]
        assert peer["namespaceSelector"]["matchLabels"] == {
            "kubernetes.io/metadata.name": chart.namespace
        }
        assert peer["podSelector"]["matchLabels"].items() <= operator_labels.items()


def test_sidecar_policy_needs_namespaces(chart) -> None:
    result = chart.template("--set", "networkPolicy.sidecarIngress.enabled=true",
                            "--set", "networkPolicy.enabled=true")  # fmt: skip
    assert result.returncode != 0
    assert "networkPolicy.sidecarIngress.namespaces" in result.stderr
