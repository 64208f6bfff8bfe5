"""`webhook.url` points the API server at an operator outside the cluster:
- set, the MutatingWebhookConfiguration calls that URL (`clientConfig.url`, no `service`) and
  carries no caBundle (the operator sets it); unset (the default), it calls the Service;
- the operator is told to issue its certificate for the URL's host as well as the Service's
  names (HOTCONF_WEBHOOK_HOSTS); what it issues for them is tested in
  tests/operator/test_webhook_certificate.py (an IP as an IP SAN, a handshake to 127.0.0.1);
- with cert-manager, the Certificate asks for the same IP address or DNS name;
- the schema refuses a URL that is not https, naming the field; a URL without a host fails."""

from __future__ import annotations

from typing import Any

import pytest

IP_URL = "https://127.0.0.1:9443/inject-sidecar"
DNS_URL = "https://hotconf.dev.example:9443/inject-sidecar"
IPV6_URL = "https://[::1]:9443/inject-sidecar"


def webhook_client(manifests) -> dict[str, Any]:
    (webhook,) = manifests.one("MutatingWebhookConfiguration")["webhooks"]
    client: dict[str, Any] = webhook["clientConfig"]
    return client


def operator_hosts(manifests) -> list[str]:
    (container,) = manifests.one("Deployment")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    return str(env["HOTCONF_WEBHOOK_HOSTS"]).split(",")


def service_names(chart, namespace: str | None = None) -> list[str]:
    base = f"hotconf.{namespace or chart.namespace}"
    return ["hotconf", base, f"{base}.svc", f"{base}.svc.cluster.local"]


@pytest.mark.parametrize("url", [IP_URL, DNS_URL])
def test_url_replaces_the_service(chart, url: str) -> None:
    manifests = chart.render("--set", f"webhook.url={url}")
    client = webhook_client(manifests)
    assert client == {"url": url}


def test_the_ci_scenario_uses_the_loopback_url(chart) -> None:
    assert webhook_client(chart.scenario("webhook-url-values.yaml"))["url"] == IP_URL


def test_default_render_calls_the_service_with_the_service_names_only(chart) -> None:
    manifests = chart.scenario("default-values.yaml")
    client = webhook_client(manifests)
    assert "url" not in client and "caBundle" not in client
    assert client["service"]["name"] == "hotconf"
    assert operator_hosts(manifests) == service_names(chart)


@pytest.mark.parametrize(
    ("url", "extra"),
    [(IP_URL, ["127.0.0.1"]), (DNS_URL, ["hotconf.dev.example"]), (IPV6_URL, ["::1"])],
)
def test_the_operator_certificate_is_for_the_url_host_too(
    chart, url: str, extra: list[str]
) -> None:
    manifests = chart.render("--set", f"webhook.url={url}")
    assert operator_hosts(manifests) == service_names(chart) + extra


@pytest.mark.parametrize(
    ("url", "dns_extra", "ips"),
    [(IP_URL, [], ["127.0.0.1"]), (DNS_URL, ["hotconf.dev.example"], [])],
)
def test_cert_manager_certificate_covers_the_url_host(
    chart, url: str, dns_extra: list[str], ips: list[str]
) -> None:
    manifests = chart.render(
        "--set", "webhook.certManager.enabled=true", "--set", f"webhook.url={url}"
    )
    spec = manifests.one("Certificate")["spec"]
    assert spec["dnsNames"] == service_names(chart) + dns_extra
    assert spec.get("ipAddresses", []) == ips
    client = webhook_client(manifests)
    assert client["url"] == url
    assert "service" not in client and "caBundle" not in client


def test_default_cert_manager_certificate_has_no_ip_addresses(chart) -> None:
    spec = chart.scenario("cert-manager-values.yaml").one("Certificate")["spec"]
    assert spec["dnsNames"] == service_names(chart)
    assert "ipAddresses" not in spec


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9443/inject-sidecar", "127.0.0.1:9443/inject-sidecar"]
)
def test_a_url_that_is_not_https_is_refused(chart, url: str) -> None:
    templated = chart.template("--set", f"webhook.url={url}")
    assert templated.returncode != 0, f"helm template accepted webhook.url={url}"
    assert "at '/webhook/url'" in templated.stderr
    assert f"'{url}' does not match pattern '^$|^https://'" in templated.stderr
    linted = chart.run("lint", str(chart.path), "--set", f"webhook.url={url}")
    assert linted.returncode != 0, f"helm lint accepted webhook.url={url}"


def test_a_url_without_a_host_is_refused(chart) -> None:
    templated = chart.template("--set", "webhook.url=https:///inject-sidecar")
    assert templated.returncode != 0
    assert "webhook.url" in templated.stderr and "has no host" in templated.stderr
