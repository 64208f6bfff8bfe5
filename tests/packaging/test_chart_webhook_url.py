"""`webhook.url` points the API server at an operator outside the cluster:
- set, the MutatingWebhookConfiguration calls that URL (`clientConfig.url`, no `service`), with
  the caBundle of the chart's CA; unset (the default), it calls the Service as before;
- the self-signed serving certificate is valid for the URL's host as well as the Service's
  names: an IPv4 or IPv6 address as an IP SAN, a name as a DNS SAN; a TLS handshake to
  127.0.0.1, checked as the API server checks it, succeeds;
- with cert-manager, the Certificate asks for the same IP address or DNS name;
- the schema refuses a URL that is not https, naming the field; a URL without a host fails;
- on upgrade, the existing certificate is reused while it was issued for the same names (a
  Secret from before webhook.url counts as issued for the Service's names) and reissued, with a
  new CA in the caBundle, when webhook.url adds a name (`lookup`, against the test control
  plane)."""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import os
import ssl
import subprocess
from typing import Any

import pytest
import yaml
from cryptography import x509
from kube_control_plane import ApiError
from tls_handshake import handshake

IP_URL = "https://127.0.0.1:9443/inject-sidecar"
DNS_URL = "https://hotconf.dev.example:9443/inject-sidecar"
IPV6_URL = "https://[::1]:9443/inject-sidecar"
NAMES_ANNOTATION = "hotconf.dev/webhook-tls-names"
TLS_KEYS = ("ca.crt", "tls.crt", "tls.key")


def webhook_client(manifests) -> dict[str, Any]:
    (webhook,) = manifests.one("MutatingWebhookConfiguration")["webhooks"]
    client: dict[str, Any] = webhook["clientConfig"]
    return client


def tls_secret(manifests) -> dict[str, Any]:
    secret: dict[str, Any] = next(
        s for s in manifests.of_kind("Secret") if s["type"] == "kubernetes.io/tls"
    )
    return secret


def certificate_of(secret: dict[str, Any]) -> x509.Certificate:
    return x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))


def sans(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    """(DNS names, IP addresses as text) of a certificate."""
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ips = [str(ip) for ip in names.get_values_for_type(x509.IPAddress)]
    return names.get_values_for_type(x509.DNSName), ips


def service_names(chart, namespace: str | None = None) -> list[str]:
    base = f"hotconf.{namespace or chart.namespace}"
    return ["hotconf", base, f"{base}.svc", f"{base}.svc.cluster.local"]


@pytest.mark.parametrize("url", [IP_URL, DNS_URL])
def test_url_replaces_the_service(chart, url: str) -> None:
    manifests = chart.render("--set", f"webhook.url={url}")
    client = webhook_client(manifests)
    assert client["url"] == url
    assert "service" not in client
    assert client["caBundle"] == tls_secret(manifests)["data"]["ca.crt"]


def test_the_ci_scenario_uses_the_loopback_url(chart) -> None:
    client = webhook_client(chart.scenario("webhook-url-values.yaml"))
    assert client["url"] == IP_URL
    assert "service" not in client


def test_default_render_calls_the_service_with_the_service_names_only(chart) -> None:
    manifests = chart.scenario("default-values.yaml")
    client = webhook_client(manifests)
    assert "url" not in client
    assert client["service"] == {
        "name": "hotconf",
        "namespace": chart.namespace,
        "path": "/inject-sidecar",
        "port": 443,
    }
    secret = tls_secret(manifests)
    dns, ips = sans(certificate_of(secret))
    assert dns == service_names(chart)
    assert ips == []
    # What a Secret from before webhook.url (no annotation) is taken to be issued for.
    assert secret["metadata"]["annotations"][NAMES_ANNOTATION] == ",".join(service_names(chart))


@pytest.mark.parametrize(
    ("url", "dns_extra", "ips"),
    [
        (IP_URL, [], ["127.0.0.1"]),
        (DNS_URL, ["hotconf.dev.example"], []),
        (IPV6_URL, [], ["::1"]),
    ],
)
def test_serving_certificate_covers_the_url_host(
    chart, url: str, dns_extra: list[str], ips: list[str]
) -> None:
    manifests = chart.render("--set", f"webhook.url={url}")
    secret = tls_secret(manifests)
    cert = certificate_of(secret)
    ca = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["ca.crt"]))
    cert.verify_directly_issued_by(ca)
    dns, found_ips = sans(cert)
    assert dns == service_names(chart) + dns_extra
    assert [str(ipaddress.ip_address(ip)) for ip in found_ips] == ips
    assert secret["metadata"]["annotations"][NAMES_ANNOTATION] == ",".join(
        service_names(chart) + dns_extra + ips
    )


async def test_api_server_style_handshake_to_the_loopback_url(chart) -> None:
    # What the kube-apiserver does for clientConfig.url https://127.0.0.1:PORT/...: trust only
    # the caBundle and check the certificate against the IP address.
    manifests = chart.render("--set", f"webhook.url={IP_URL}")
    secret = tls_secret(manifests)
    cert, key = (base64.b64decode(secret["data"][k]) for k in ("tls.crt", "tls.key"))
    ca_pem = base64.b64decode(webhook_client(manifests)["caBundle"])
    await handshake(cert, key, ca_pem=ca_pem, server_hostname="127.0.0.1")

    # The default certificate has no IP SAN: the same handshake is refused, so the check is real.
    default = tls_secret(chart.scenario("default-values.yaml"))
    cert, key, ca_pem = (
        base64.b64decode(default["data"][k]) for k in ("tls.crt", "tls.key", "ca.crt")
    )
    with pytest.raises(ssl.SSLCertVerificationError):
        await handshake(cert, key, ca_pem=ca_pem, server_hostname="127.0.0.1")


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


# --- Upgrade: `lookup` of the existing Secret, against the test control plane. ---


def existing_secret(chart, annotations: dict[str, str], namespace: str) -> str:
    """The webhook Secret as an earlier release left it, owned by the release."""
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {
            "name": "hotconf-webhook-tls",
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "Helm"},
            "annotations": {
                "meta.helm.sh/release-name": chart.release,
                "meta.helm.sh/release-namespace": namespace,
                **annotations,
            },
        },
        # Not certificates: the test only needs to tell reused data from generated data.
        "data": {key: base64.b64encode(key.encode()).decode() for key in TLS_KEYS},
    }
    return json.dumps(secret)


@pytest.fixture
def upgrade(chart, control_plane, kube_namespace):
    """Render as `helm upgrade` would (lookup against the API server), given the Secret an
    earlier release left, and return the rendered webhook Secret."""
    env = {**os.environ, "KUBECONFIG": str(control_plane.kubeconfig)}
    path = f"/api/v1/namespaces/{kube_namespace}/secrets"

    def run(annotations: dict[str, str], *values_args: str) -> dict[str, Any]:
        with contextlib.suppress(ApiError):
            control_plane.admin.request("DELETE", f"{path}/hotconf-webhook-tls")
        body = json.loads(existing_secret(chart, annotations, kube_namespace))
        control_plane.admin.request("POST", path, body)
        done = subprocess.run(
            [
                str(chart.helm),
                "install",
                chart.release,
                str(chart.path),
                "--namespace",
                kube_namespace,
                "--dry-run=server",
                "--output",
                "json",
                *values_args,
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        manifest = json.loads(done.stdout)["manifest"]
        docs = [doc for doc in yaml.safe_load_all(manifest) if doc]
        secret: dict[str, Any] = next(
            d for d in docs if d["kind"] == "Secret" and d["type"] == "kubernetes.io/tls"
        )
        webhook = next(d for d in docs if d["kind"] == "MutatingWebhookConfiguration")
        assert webhook["webhooks"][0]["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]
        return secret

    run.namespace = kube_namespace  # type: ignore[attr-defined]
    return run


def reused(secret: dict[str, Any]) -> bool:
    return bool(secret["data"]["tls.crt"] == base64.b64encode(b"tls.crt").decode())


def test_upgrade_keeps_a_certificate_from_before_webhook_url(upgrade) -> None:
    # A Secret written by chart 0.1.x has no names annotation: issued for the Service's names.
    assert reused(upgrade({}))


def test_upgrade_reissues_when_webhook_url_adds_a_name(chart, upgrade) -> None:
    secret = upgrade({}, "--set", f"webhook.url={IP_URL}")
    assert not reused(secret)
    assert sans(certificate_of(secret))[1] == ["127.0.0.1"]


def test_upgrade_keeps_a_certificate_issued_for_the_same_url(chart, upgrade) -> None:
    service = service_names(chart, upgrade.namespace)
    names = ",".join([*service, "127.0.0.1"])
    assert reused(upgrade({NAMES_ANNOTATION: names}, "--set", f"webhook.url={IP_URL}"))
    # ... and reissues it when the URL goes away (the IP SAN with it).
    secret = upgrade({NAMES_ANNOTATION: names})
    assert not reused(secret)
    assert sans(certificate_of(secret)) == (service, [])
