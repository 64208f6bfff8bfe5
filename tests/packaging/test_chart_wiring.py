"""The chart wires the operator to the settings contract and its parts to each other:
- the operator gets only environment variables that hotconf-operator reads, and its own settings
  parser accepts the rendered env and args of every scenario, giving the ports, standalone mode
  (one replica) or peering name (several), signing key Secret, webhook certificate (Secret,
  hosts and configuration for the operator to manage, or cert-manager's mounted directory),
  sidecar image and resources the chart meant;
- the chart's default sidecar port is the wire's DEFAULT_PORT (values.yaml cannot import it),
  and reaches the operator as HOTCONF_SIDECAR_PORT;
- no key and no certificate is rendered (test_chart_renders_the_same_twice.py says why): the
  operator is told which Secrets to keep, the default Secret name or signingKey.existingSecret;
- without cert-manager the operator is given the Service's names for its certificate and the
  configuration to set the caBundle of, which is rendered without one;
- with cert-manager, the Certificate writes the Secret the operator mounts and the webhook asks
  cert-manager for its caBundle; the webhook is registered as the brief requires;
- the webhook is sent, and the operator's pod watch selects, only pods labelled
  ``hotconf.dev/inject: "true"``, unless legacyAnnotationOptIn sends and watches every pod;
- historyLimit reaches the operator as HOTCONF_HISTORY_LIMIT;
- NOTES.txt names objects that the chart really creates, and its JSON patch parses."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest
import yaml

from hotconf_operator._injection import (
    INJECT_ANNOTATION,
    INJECT_LABEL,
    INJECT_SELECTOR,
    InjectionSettings,
    hardened_security_context,
    injected_copy,
)
from hotconf_operator._settings import ALL_PODS, ENVIRONMENT, parse_settings
from hotconf_wire.envelope import DEFAULT_PORT


def operator_container(manifests) -> dict[str, Any]:
    containers = manifests.one("Deployment")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["operator"]
    container: dict[str, Any] = containers[0]
    return container


def env_of(container: dict[str, Any]) -> dict[str, str]:
    """The container's literal variables (extraEnv may add valueFrom ones: left out)."""
    return {item["name"]: item["value"] for item in container["env"] if "value" in item}


def extra_env_names(chart, scenario: str) -> set[str]:
    """Names the scenario adds with extraEnv: the user's, not the chart's contract."""
    values = yaml.safe_load((chart.path / "ci" / scenario).read_text()) or {}
    return {item["name"] for item in values.get("extraEnv", [])}


def mounted_secret(manifests, path: str) -> tuple[str, set[str]]:
    """The Secret mounted at `path` in the operator, and the file names it provides there."""
    spec = manifests.one("Deployment")["spec"]["template"]["spec"]
    mount = next(m for m in operator_container(manifests)["volumeMounts"] if m["mountPath"] == path)
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    return volume["secret"]["secretName"], {item["path"] for item in volume["secret"]["items"]}


def secret_named(manifests, name: str) -> dict[str, Any]:
    found = [s for s in manifests.of_kind("Secret") if s["metadata"]["name"] == name]
    assert len(found) == 1, f"no Secret {name} rendered"
    secret: dict[str, Any] = found[0]
    return secret


def decoded(secret: dict[str, Any], key: str) -> bytes:
    return base64.b64decode(secret["data"][key])


def test_operator_gets_the_contract_settings(chart, scenario: str) -> None:
    manifests = chart.scenario(scenario)
    container = operator_container(manifests)
    env = env_of(container)
    unknown = (
        {item["name"] for item in container["env"]} - ENVIRONMENT - extra_env_names(chart, scenario)
    )
    assert not unknown, f"hotconf-operator reads no {sorted(unknown)}"
    assert container["command"] == ["hotconf-operator"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert env["HOTCONF_HEALTH_PORT"] == str(ports["health"])
    assert env["HOTCONF_METRICS_PORT"] == str(ports["metrics"])
    assert env["HOTCONF_WEBHOOK_PORT"] == str(ports["webhook"])
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert "HOTCONF_SIGNING_KEY_FILE" not in env
    assert env["HOTCONF_SIGNING_KEY_SECRET"].startswith(f"{chart.namespace}/")
    if "cert-manager" in scenario:
        _, files = mounted_secret(manifests, env["HOTCONF_WEBHOOK_CERT_DIR"])
        assert files == {"tls.crt", "tls.key"}
        assert "HOTCONF_WEBHOOK_CERT_SECRET" not in env
    else:
        assert "HOTCONF_WEBHOOK_CERT_DIR" not in env
        assert env["HOTCONF_WEBHOOK_CERT_SECRET"].startswith(f"{chart.namespace}/")
    assert env["HOTCONF_LOG_LEVEL"] in {"debug", "info", "warning", "error"}
    assert json.loads(env["HOTCONF_SIDECAR_RESOURCES"])["requests"]


def test_operator_settings_parser_accepts_what_the_chart_renders(chart, scenario: str) -> None:
    manifests = chart.scenario(scenario)
    container = operator_container(manifests)
    env = env_of(container)
    # The operator's own parser, as the container would run it: args after the command, the env.
    config = parse_settings(container.get("args", []), env)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert config.serving.health_port == ports["health"]
    assert config.serving.metrics_port == ports["metrics"]
    assert config.serving.webhook_port == ports["webhook"]
    assert config.signing.key_file is None
    assert config.signing.key_secret == env["HOTCONF_SIGNING_KEY_SECRET"]
    if "cert-manager" in scenario:
        assert str(config.serving.webhook_cert_dir) == env["HOTCONF_WEBHOOK_CERT_DIR"]
    else:
        assert config.serving.webhook_cert_secret == env["HOTCONF_WEBHOOK_CERT_SECRET"]
        service = manifests.one("Service")["metadata"]["name"]
        assert f"{service}.{chart.namespace}.svc" in config.serving.webhook_hosts
        webhooks = manifests.of_kind("MutatingWebhookConfiguration")
        assert config.serving.webhook_configuration == (
            webhooks[0]["metadata"]["name"] if webhooks else None
        )
        for configuration in webhooks:  # the operator sets it, a render must not
            assert "caBundle" not in configuration["webhooks"][0]["clientConfig"]
    deployment = manifests.one("Deployment")
    if scenario.startswith("ha-"):
        # Several replicas: kopf peers through the object the chart creates (test_chart_ha.py).
        assert deployment["spec"]["replicas"] > 1
        assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
        assert not config.peering.standalone
        assert config.peering.name == env["HOTCONF_PEERING_NAME"]
        assert config.peering.lifetime == int(env["HOTCONF_PEERING_LIFETIME"])
    else:
        # One replica, and RBAC without peering rights: kopf must run standalone.
        assert deployment["spec"]["replicas"] == 1
        assert deployment["spec"]["strategy"]["type"] == "Recreate"
        assert config.peering.standalone
    assert config.sidecar.image == env["HOTCONF_SIDECAR_IMAGE"] != ""
    rendered = json.loads(env["HOTCONF_SIDECAR_RESOURCES"])
    assert config.sidecar.resources == {
        part: {name: str(quantity) for name, quantity in quantities.items()}
        for part, quantities in rendered.items()
    }
    assert config.log_level == env["HOTCONF_LOG_LEVEL"]
    assert config.namespaces == tuple(
        sorted(filter(None, env.get("HOTCONF_NAMESPACES", "").split(",")))
    )


def test_default_sidecar_port_is_the_wire_default(chart) -> None:
    values = yaml.safe_load((chart.path / "values.yaml").read_text())
    assert values["sidecar"]["port"] == DEFAULT_PORT
    env = env_of(operator_container(chart.scenario("default-values.yaml")))
    assert parse_settings([], env).sidecar.port == DEFAULT_PORT


def test_service_exposes_webhook_on_443_and_metrics(chart) -> None:
    service = chart.scenario("default-values.yaml").one("Service")
    ports = {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]}
    assert ports["https-webhook"] == (443, "webhook")
    assert ports["http-metrics"] == (9090, "metrics")


def test_namespaces_and_images_follow_values(chart) -> None:
    env = env_of(operator_container(chart.scenario("default-values.yaml")))
    assert "HOTCONF_NAMESPACES" not in env
    assert env["HOTCONF_SIDECAR_IMAGE"] == operator_container(chart.render())["image"]
    env = env_of(operator_container(chart.scenario("namespaced-values.yaml")))
    assert env["HOTCONF_NAMESPACES"] == "team-a,team-b"
    full = chart.scenario("full-values.yaml")
    digest = "sha256:" + "0123456789abcdef" * 4
    assert operator_container(full)["image"] == f"registry.example.com/platform/hotconf@{digest}"
    env = env_of(operator_container(full))
    assert env["HOTCONF_SIDECAR_IMAGE"] == "registry.example.com/platform/hotconf:0.1.0-rc1-sidecar"
    assert json.loads(env["HOTCONF_SIDECAR_RESOURCES"]) == {
        "requests": {"cpu": "20m", "memory": "64Mi"},
        "limits": {"cpu": "200m", "memory": "160Mi"},
    }


def test_no_key_or_certificate_is_rendered_the_operator_keeps_them(chart, scenario: str) -> None:
    manifests = chart.scenario(scenario)
    assert not manifests.of_kind("Secret"), "a rendered Secret would change on every render"
    env = env_of(operator_container(manifests))
    expected = "my-hotconf-signing-key" if scenario == "no-webhook-values.yaml" else None
    name = env["HOTCONF_SIGNING_KEY_SECRET"].split("/", 1)[1]
    assert name == (expected or f"{manifests.one('Service')['metadata']['name']}-signing-key")


def webhook_of(manifests) -> dict[str, Any]:
    configuration = manifests.one("MutatingWebhookConfiguration")
    assert len(configuration["webhooks"]) == 1
    webhook: dict[str, Any] = configuration["webhooks"][0]
    return webhook


def test_webhook_is_registered_safely(chart, scenario: str) -> None:
    manifests = chart.scenario(scenario)
    if scenario == "no-webhook-values.yaml":
        assert not manifests.of_kind("MutatingWebhookConfiguration")
        return
    webhook = webhook_of(manifests)
    assert webhook["admissionReviewVersions"] == ["v1"]
    assert webhook["sideEffects"] == "None"
    expected_policy = "Fail" if scenario == "cert-manager-issuer-values.yaml" else "Ignore"
    assert webhook["failurePolicy"] == expected_policy
    assert webhook["rules"] == [
        {
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "operations": ["CREATE"],
            "resources": ["pods"],
            "scope": "Namespaced",
        }
    ]
    if scenario == "webhook-url-values.yaml":
        # The operator runs outside the cluster: the API server calls the URL, not the Service
        # (test_chart_webhook_url.py).
        assert webhook["clientConfig"]["url"] == "https://127.0.0.1:9443/inject-sidecar"
        assert "service" not in webhook["clientConfig"]
    else:
        service = manifests.one("Service")
        assert webhook["clientConfig"]["service"] == {
            "name": service["metadata"]["name"],
            "namespace": chart.namespace,
            "path": "/inject-sidecar",
            "port": 443,
        }
    # The operator's own namespace never goes through its own webhook.
    expressions = webhook["namespaceSelector"]["matchExpressions"]
    assert {"key": "kubernetes.io/metadata.name", "operator": "NotIn"} in [
        {k: e[k] for k in ("key", "operator")} for e in expressions
    ]
    assert any(e["operator"] == "NotIn" and chart.namespace in e["values"] for e in expressions), (
        expressions
    )


def test_the_webhook_and_the_pod_watch_select_the_opt_in_label(chart) -> None:
    manifests = chart.scenario("default-values.yaml")
    # The label the injection reads, as the selector the operator's pod watch uses by default.
    assert webhook_of(manifests)["objectSelector"] == {"matchLabels": {INJECT_LABEL: "true"}}
    assert INJECT_SELECTOR == f"{INJECT_LABEL}=true"
    config = parse_settings([], env_of(operator_container(manifests)))
    assert config.pod_selector == INJECT_SELECTOR
    # The user's objectSelector narrows it, never replaces it.
    narrowed = webhook_of(chart.scenario("full-values.yaml"))["objectSelector"]
    assert narrowed["matchLabels"] == {INJECT_LABEL: "true"}
    assert narrowed["matchExpressions"] == [{"key": "hotconf.dev/skip", "operator": "DoesNotExist"}]
    # The migration from the legacy annotation: every pod, to the webhook and to the watch.
    legacy = chart.render("--set", "legacyAnnotationOptIn=true")
    assert "objectSelector" not in webhook_of(legacy)
    config = parse_settings([], env_of(operator_container(legacy)))
    assert config.pod_selector == ALL_PODS


def test_namespaced_webhook_only_sees_watched_namespaces(chart) -> None:
    expressions = webhook_of(chart.scenario("namespaced-values.yaml"))["namespaceSelector"]
    assert expressions["matchExpressions"][0] == {
        "key": "kubernetes.io/metadata.name",
        "operator": "In",
        "values": ["team-a", "team-b"],
    }


def test_the_operator_serves_its_webhook_certificate_even_without_the_webhook(chart) -> None:
    # The operator serves its webhook port whatever the values: it makes the certificate, and
    # has no configuration to set a caBundle in.
    config = parse_settings(
        [], env_of(operator_container(chart.scenario("no-webhook-values.yaml")))
    )
    assert config.serving.webhook_cert_secret and config.serving.webhook_configuration is None


@pytest.mark.parametrize(
    "scenario", ["cert-manager-values.yaml", "cert-manager-issuer-values.yaml"]
)
def test_cert_manager_writes_the_mounted_secret(chart, scenario: str) -> None:
    manifests = chart.scenario(scenario)
    env = env_of(operator_container(manifests))
    secret_name, _ = mounted_secret(manifests, env["HOTCONF_WEBHOOK_CERT_DIR"])
    assert secret_name not in {s["metadata"]["name"] for s in manifests.of_kind("Secret")}
    certificate = manifests.one("Certificate")
    assert certificate["spec"]["secretName"] == secret_name
    service = manifests.one("Service")["metadata"]["name"]
    assert f"{service}.{chart.namespace}.svc" in certificate["spec"]["dnsNames"]
    configuration = manifests.one("MutatingWebhookConfiguration")
    assert configuration["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == (
        f"{chart.namespace}/{certificate['metadata']['name']}"
    )
    assert "caBundle" not in configuration["webhooks"][0]["clientConfig"]
    issuer = certificate["spec"]["issuerRef"]
    issuers = manifests.of_kind("Issuer")
    if scenario == "cert-manager-values.yaml":
        assert [i["metadata"]["name"] for i in issuers] == [issuer["name"]]
        assert issuers[0]["spec"] == {"selfSigned": {}}
    else:
        assert not issuers
        assert issuer == {"name": "cluster-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}


def test_service_monitor_scrapes_the_metrics_port(chart) -> None:
    manifests = chart.scenario("servicemonitor-values.yaml")
    monitor = manifests.one("ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    port_names = {p["name"] for p in manifests.one("Service")["spec"]["ports"]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in port_names and endpoint["path"] == "/metrics"
    assert not chart.scenario("default-values.yaml").of_kind("ServiceMonitor")


@pytest.mark.parametrize("scenario", ["default-values.yaml", "no-webhook-values.yaml"])
def test_notes_name_real_objects(chart, scenario: str) -> None:
    values = str(chart.path / "ci" / scenario)
    installed = chart.run(
        "install",
        chart.release,
        str(chart.path),
        "--namespace",
        chart.namespace,
        "--values",
        values,
        "--dry-run=client",
    )
    assert installed.returncode == 0, installed.stderr
    notes = installed.stdout.split("NOTES:", 1)[1]
    manifests = chart.scenario(scenario)
    deployments = re.findall(r"deployment/([\w.-]+)", notes)
    assert deployments == [manifests.one("Deployment")["metadata"]["name"]]
    assert f"helm test {chart.release} -n {chart.namespace}" in notes
    for secret in re.findall(r"get secret ([\w.-]+)", notes):
        assert secret == "my-hotconf-signing-key"
    for patch in re.findall(r"-p \\\n\s*'(\{.*\})'", notes):
        annotations = json.loads(patch)["spec"]["template"]["metadata"]["annotations"]
        assert annotations["hotconf.dev/configmaps"] == "my-config"
    assert "kubectl hotconf status" in notes


DIGEST = "sha256:" + "ab" * 32


def test_image_digest_pins_the_operator_and_the_default_sidecar(chart) -> None:
    manifests = chart.render("--set", f"image.digest={DIGEST}", "--set", "image.tag=9.9")
    pinned = f"hotconf@{DIGEST}"
    assert operator_container(manifests)["image"] == pinned
    assert env_of(operator_container(manifests))["HOTCONF_SIDECAR_IMAGE"] == pinned
    test_pod = manifests.one("Pod")
    assert test_pod["spec"]["containers"][0]["image"] == pinned
    # A sidecar image of its own is another image: the operator's digest does not pin it.
    own = chart.render("--set", f"image.digest={DIGEST}", "--set", "sidecar.image.tag=2.0")
    assert env_of(operator_container(own))["HOTCONF_SIDECAR_IMAGE"] == "hotconf:2.0"


def test_extra_env_volumes_and_spread_reach_the_operator_pod(chart) -> None:
    full = chart.scenario("full-values.yaml")
    pod = full.one("Deployment")["spec"]["template"]["spec"]
    container = operator_container(full)
    env = container["env"]
    assert env[-2:] == [
        {"name": "HOTCONF_PUSH_TIMEOUT", "value": "20"},
        {"name": "HTTPS_PROXY", "valueFrom": {"configMapKeyRef": {
            "name": "proxy-settings", "key": "https-proxy", "optional": True}}},
    ]  # fmt: skip
    # After the chart's own variables, so the last one wins and the operator accepts it.
    assert parse_settings([], env_of(container)).push.timeout == 20.0
    assert {"name": "corporate-ca", "mountPath": "/etc/ssl/corporate", "readOnly": True} in (
        container["volumeMounts"]
    )
    assert {"name": "corporate-ca", "configMap": {"name": "corporate-ca", "optional": True}} in (
        pod["volumes"]
    )
    assert pod["topologySpreadConstraints"][0]["topologyKey"] == "topology.kubernetes.io/zone"
    default = chart.scenario("default-values.yaml").one("Deployment")["spec"]["template"]["spec"]
    assert "topologySpreadConstraints" not in default
    assert [v["name"] for v in default["volumes"]] == ["tmp"]


def test_sidecar_security_context_reaches_the_injection_hardened_by_default(chart) -> None:
    env = env_of(operator_container(chart.render()))
    config = parse_settings([], env)
    # The chart's default is exactly the injection's own hardened default.
    assert config.sidecar.security_context == hardened_security_context(65532)
    loosened = chart.render(
        "--set", "sidecar.securityContext.runAsUser=null",
        "--set", "sidecar.securityContext.runAsGroup=null",
    )  # fmt: skip
    own = parse_settings([], env_of(operator_container(loosened))).sidecar.security_context
    assert own is not None and "runAsUser" not in own and own["runAsNonRoot"] is True


def test_service_monitor_passes_relabelings_through(chart) -> None:
    (endpoint,) = chart.scenario("servicemonitor-values.yaml").one("ServiceMonitor")["spec"][
        "endpoints"
    ]
    assert endpoint["relabelings"] == [
        {"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"}
    ]
    assert endpoint["metricRelabelings"][0]["action"] == "drop"
    (plain,) = chart.render("--set", "metrics.serviceMonitor.enabled=true").one("ServiceMonitor")[
        "spec"
    ]["endpoints"]
    assert "relabelings" not in plain and "metricRelabelings" not in plain


def test_pod_monitor_selects_what_the_webhook_injects(chart) -> None:
    manifests = chart.scenario("servicemonitor-values.yaml")
    monitor = manifests.one("PodMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    # The label and the port name the injection really adds, taken from the injection itself.
    injected = injected_copy(
        {"metadata": {"annotations": {INJECT_ANNOTATION: "true"}}, "spec": {"containers": []}},
        InjectionSettings(image="hotconf:1", public_key_pem="PEM"),
    )
    labels = injected["metadata"]["labels"]
    assert monitor["spec"]["selector"] == {"matchLabels": labels}
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    (sidecar,) = injected["spec"]["initContainers"]
    assert endpoint["port"] in {p["name"] for p in sidecar["ports"]}
    assert endpoint["path"] == "/metrics"
    assert endpoint["relabelings"][0]["targetLabel"] == "app_namespace"
    assert monitor["spec"]["namespaceSelector"] == {"any": True}
    namespaced = chart.render(
        "--set", "metrics.podMonitor.enabled=true", "--set", "watchNamespaces={team-a,team-b}"
    ).one("PodMonitor")
    assert namespaced["spec"]["namespaceSelector"] == {"matchNames": ["team-a", "team-b"]}
    assert not chart.scenario("default-values.yaml").of_kind("PodMonitor")


def test_history_limit_reaches_the_operator(chart) -> None:
    default = parse_settings([], env_of(operator_container(chart.scenario("default-values.yaml"))))
    assert default.history_limit == 10
    rendered = chart.render("--set", "historyLimit=25")
    assert parse_settings([], env_of(operator_container(rendered))).history_limit == 25
