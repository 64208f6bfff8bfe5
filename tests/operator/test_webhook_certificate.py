"""The webhook certificate the operator makes and keeps, on the real API server (issue 11, item 3).

Proves, as the chart's ServiceAccount (so with exactly the chart's rights): a missing Secret is
created with a CA and a serving certificate for the hosts given, an IP address as an IP SAN, and
a TLS handshake checked as the API server checks it succeeds for 127.0.0.1 and for the Service's
name (and fails for another name); started again, the operator reuses the Secret byte for byte;
new hosts reissue the serving certificate from the same CA (the caBundle stays); two replicas
starting at once end with one certificate; a Secret that does not hold certificates is refused
with a message naming it and the fix, and is left as it was.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from collections.abc import AsyncIterator
from typing import Any

import kopf
import pytest
from cryptography import x509
from kube_control_plane import ApiError
from tls_handshake import handshake

from hotconf_operator._errors import WebhookCertificateError
from hotconf_operator._kubeapi import KubeApi
from hotconf_operator._webhook_tls import NAMES_ANNOTATION, ensure_certificate

HOSTS = ("hotconf-e2e", "hotconf-e2e.hotconf-system.svc", "127.0.0.1")


@pytest.fixture
async def api(control_plane: Any, chart_release: Any) -> AsyncIterator[tuple[KubeApi, str]]:
    """The chart's ServiceAccount, and its webhook Secret's path (deleted before and after)."""
    name = f"{chart_release.name}-webhook-tls"
    path = f"/api/v1/namespaces/{chart_release.namespace}/secrets/{name}"
    with contextlib.suppress(ApiError):
        control_plane.admin.request("DELETE", path)
    info = kopf.ConnectionInfo(
        server=control_plane.url,
        ca_path=str(control_plane.pki.ca_cert),
        token=chart_release.token(),
    )
    async with KubeApi(info) as client:
        yield client, path
    with contextlib.suppress(ApiError):
        control_plane.admin.request("DELETE", path)


def ref(chart_release: Any) -> str:
    return f"{chart_release.namespace}/{chart_release.name}-webhook-tls"


async def test_created_then_reused_then_reissued_from_the_same_ca(
    api: tuple[KubeApi, str], control_plane: Any, chart_release: Any
) -> None:
    client, path = api
    first = await ensure_certificate(client, ref(chart_release), hosts=HOSTS, days=365)
    stored = control_plane.admin.request("GET", path)
    assert stored["type"] == "kubernetes.io/tls"
    assert stored["metadata"]["annotations"][NAMES_ANNOTATION] == ",".join(HOSTS)
    assert "app.kubernetes.io/instance" not in stored["metadata"].get("labels", {})
    assert base64.b64decode(stored["data"]["ca.crt"]) == first.ca_crt
    for host in ("127.0.0.1", "hotconf-e2e.hotconf-system.svc"):
        await handshake(first.tls_crt, first.tls_key, ca_pem=first.ca_crt, server_hostname=host)
    with pytest.raises(ssl.SSLCertVerificationError):
        await handshake(
            first.tls_crt, first.tls_key, ca_pem=first.ca_crt, server_hostname="elsewhere.example"
        )

    again = await ensure_certificate(client, ref(chart_release), hosts=HOSTS, days=365)
    assert again == first  # a restarted operator serves the same certificate

    more = (*HOSTS, "hotconf.dev.example")
    reissued = await ensure_certificate(client, ref(chart_release), hosts=more, days=365)
    assert reissued.ca_crt == first.ca_crt  # the caBundle does not change
    assert reissued.tls_crt != first.tls_crt
    cert = x509.load_pem_x509_certificate(reissued.tls_crt)
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(first.ca_crt))
    await handshake(
        reissued.tls_crt,
        reissued.tls_key,
        ca_pem=first.ca_crt,
        server_hostname="hotconf.dev.example",
    )


async def test_replicas_starting_at_once_share_one_certificate(
    api: tuple[KubeApi, str], chart_release: Any
) -> None:
    client, _ = api
    results = await asyncio.gather(
        *(ensure_certificate(client, ref(chart_release), hosts=HOSTS, days=365) for _ in range(3))
    )
    assert len({r.ca_crt for r in results}) == 1 and len({r.tls_crt for r in results}) == 1


async def test_a_secret_without_certificates_is_refused_and_kept(
    api: tuple[KubeApi, str], control_plane: Any, chart_release: Any
) -> None:
    client, path = api
    name = path.rsplit("/", 1)[1]
    garbage = base64.b64encode(b"not a certificate").decode()
    control_plane.admin.request(
        "POST",
        path.rsplit("/", 1)[0],
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
         "data": {"ca.crt": garbage, "tls.crt": garbage, "tls.key": garbage}},
    )  # fmt: skip
    with pytest.raises(WebhookCertificateError) as caught:
        await ensure_certificate(client, ref(chart_release), hosts=HOSTS, days=365)
    assert f"Secret {ref(chart_release)}" in str(caught.value)
    assert "delete it" in str(caught.value)
    assert control_plane.admin.request("GET", path)["data"]["tls.crt"] == garbage
