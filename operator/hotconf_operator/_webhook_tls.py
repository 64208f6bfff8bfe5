"""The webhook's serving certificate and the configuration's caBundle, managed by the operator.

Why here and not in the chart: a template that generates a CA (``genCA``) makes a new one on
every ``helm template`` (Argo CD, Flux and every rendering pipeline render without ``lookup``),
so the caBundle and the Secret change on every sync. The chart renders neither; it names the
Secret (``--webhook-cert-secret``), the hosts (``--webhook-hosts``) and the
MutatingWebhookConfiguration (``--webhook-configuration``), and the operator:

1. :func:`ensure_certificate` at start-up: reads the ``kubernetes.io/tls`` Secret and reuses it
   when it is whole, issued for these hosts and valid for :data:`RENEW_BEFORE` more; else issues
   a serving certificate (from the Secret's CA when that is still good, so the caBundle stays the
   same, else from a new CA) and writes the Secret: create when missing, update with the read
   ``resourceVersion`` otherwise, so that of several replicas starting at once one writes and the
   others (409) read and use what it wrote. A Secret that does not parse is refused with a
   message (it may be someone's own certificate): nothing is overwritten.
2. :func:`write_files`: ``tls.crt`` and ``tls.key`` into a private directory for kopf's
   ``WebhookServer``.
3. :class:`CaBundleKeeper`: sets every webhook's ``clientConfig.caBundle`` of the configuration
   to the CA, at start and then every :data:`KEEP_INTERVAL` seconds, so a configuration applied
   again without a caBundle, or created after the operator started, is fixed within that time.
   Patched by webhook name (a strategic merge patch), field manager ``hotconf-operator``; a
   client-side or server-side ``kubectl apply`` of the chart leaves that field alone.

Called by ``__main__``. Raises :class:`~hotconf_operator._errors.WebhookCertificateError`.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import ipaddress
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hotconf_operator._errors import KubeApiError, WebhookCertificateError
from hotconf_operator._kubeapi import KubeApi

__all__ = [
    "KEEP_INTERVAL",
    "NAMES_ANNOTATION",
    "RENEW_BEFORE",
    "CaBundleKeeper",
    "Issued",
    "ensure_certificate",
    "issue",
    "write_files",
]

logger: Final = logging.getLogger("hotconf_operator.webhook_tls")

#: Records on the Secret which hosts its certificate was issued for (a change reissues it).
NAMES_ANNOTATION: Final = "hotconf.dev/webhook-tls-names"
#: A certificate (or CA) closer than this to its end is replaced at start-up.
RENEW_BEFORE: Final = datetime.timedelta(days=30)
#: Seconds between checks of the configuration's caBundle: a re-applied configuration calls an
#: untrusted webhook for at most this long (pods admitted meanwhile are reported as misses).
KEEP_INTERVAL: Final = 30.0


@dataclass(frozen=True)
class Issued:
    """The CA and the serving certificate with its key, all PEM; ``ca_key`` signs renewals
    with the same CA (empty for a Secret written by someone else without it)."""

    ca_crt: bytes
    tls_crt: bytes
    tls_key: bytes
    ca_key: bytes = b""

    def secret_data(self) -> dict[str, bytes]:
        data = {"ca.crt": self.ca_crt, "tls.crt": self.tls_crt, "tls.key": self.tls_key}
        if self.ca_key:
            data["ca.key"] = self.ca_key
        return data


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def issue(
    hosts: tuple[str, ...],
    *,
    days: int,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
    common_name: str = "hotconf-webhook-ca",
) -> Issued:
    """A serving certificate for ``hosts`` (IP addresses as IP SANs), from ``ca`` or a new CA."""
    now = datetime.datetime.now(datetime.UTC)
    start = now - datetime.timedelta(minutes=5)  # clocks of the API server may lag a little
    end = now + datetime.timedelta(days=days)
    if ca is None:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .sign(ca_key, hashes.SHA256())
        )
        ca = (ca_cert, ca_key)
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(min(end, ca_cert.not_valid_after_utc))
        .add_extension(x509.SubjectAlternativeName([_san(h) for h in hosts]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return Issued(
        ca_crt=ca_cert.public_bytes(serialization.Encoding.PEM),
        tls_crt=cert.public_bytes(serialization.Encoding.PEM),
        tls_key=_pem_key(key),
        ca_key=_pem_key(ca_key),
    )


def _parse(
    data: dict[str, bytes], source: str
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey | None, x509.Certificate]:
    """The CA certificate, the CA's key (None when the Secret has none) and the leaf."""
    missing = [k for k in ("ca.crt", "tls.crt", "tls.key") if k not in data]
    if missing:
        raise WebhookCertificateError(
            f"{source} lacks {', '.join(missing)}; delete it and the operator makes a new one"
        )
    try:
        ca = x509.load_pem_x509_certificate(data["ca.crt"])
        leaf = x509.load_pem_x509_certificate(data["tls.crt"])
        serialization.load_pem_private_key(data["tls.key"], password=None)
        ca_key = None
        if "ca.key" in data:
            loaded = serialization.load_pem_private_key(data["ca.key"], password=None)
            ca_key = loaded if isinstance(loaded, ec.EllipticCurvePrivateKey) else None
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise WebhookCertificateError(
            f"{source} does not hold PEM certificates and keys ({exc}); delete it and the "
            "operator makes a new one"
        ) from exc
    return ca, ca_key, leaf


async def ensure_certificate(
    api: KubeApi, secret: str, *, hosts: tuple[str, ...], days: int
) -> Issued:
    """The certificate in Secret ``secret`` ("ns/name"), made or renewed as the docstring says."""
    namespace, name = secret.split("/", 1)
    source = f"webhook certificate Secret {secret}"
    names = ",".join(hosts)
    for _ in range(3):  # another replica may write between our read and our write
        try:
            current = await api.get_secret(namespace, name)
        except KubeApiError as exc:
            raise WebhookCertificateError(f"cannot read {source}: {exc}") from exc
        ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None
        if current is not None:
            data = {k: base64.b64decode(v) for k, v in (current.get("data") or {}).items()}
            ca_cert, ca_key, leaf = _parse(data, source)
            annotations = current.get("metadata", {}).get("annotations") or {}
            renew_at = datetime.datetime.now(datetime.UTC) + RENEW_BEFORE
            if (
                annotations.get(NAMES_ANNOTATION) == names
                and leaf.not_valid_after_utc > renew_at
                and ca_cert.not_valid_after_utc > renew_at
            ):
                return Issued(
                    data["ca.crt"], data["tls.crt"], data["tls.key"], data.get("ca.key", b"")
                )
            if ca_key is not None and ca_cert.not_valid_after_utc > renew_at:
                ca = (ca_cert, ca_key)  # the same CA: the caBundle does not change
            logger.info("reissuing the %s for %s", source, names)
        issued = issue(hosts, days=days, ca=ca)
        body = _secret_body(namespace, name, issued, names=names)
        try:
            if current is None:
                await api.create_secret_object(namespace, body)
            else:
                body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                await api.replace_secret(namespace, name, body)
        except KubeApiError as exc:
            if exc.status == 409:
                continue  # someone else wrote it first: read theirs
            raise WebhookCertificateError(f"cannot write {source}: {exc}") from exc
        logger.info("wrote the %s for %s", source, names)
        return issued
    raise WebhookCertificateError(f"{source} kept changing while the operator wrote it; restart")


def _secret_body(namespace: str, name: str, issued: Issued, *, names: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        # No app.kubernetes.io/instance label: Argo CD tracks (and prunes) by it, and this
        # Secret is no part of the rendered chart.
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/part-of": "hotconf"},
            "annotations": {NAMES_ANNOTATION: names},
        },
        "data": {k: base64.b64encode(v).decode() for k, v in issued.secret_data().items()},
    }


def write_files(issued: Issued, directory: Path | None = None) -> Path:
    """``tls.crt`` and ``tls.key`` in a new private directory (under ``directory``)."""
    path = Path(tempfile.mkdtemp(prefix="hotconf-webhook-", dir=directory))
    for filename, content in (("tls.crt", issued.tls_crt), ("tls.key", issued.tls_key)):
        fd = os.open(path / filename, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(content)
    return path


class CaBundleKeeper:
    """Keeps the caBundle of every webhook of one MutatingWebhookConfiguration at our CA."""

    def __init__(self, api: KubeApi, name: str, ca_crt: bytes) -> None:
        self._api = api
        self._name = name
        self._bundle = base64.b64encode(ca_crt).decode()
        self._missing_logged = False

    async def keep(self) -> bool:
        """One check (and patch when needed); whether the configuration is now right."""
        try:
            config = await self._api.get_webhook_configuration(self._name)
        except KubeApiError as exc:
            if exc.status == 404:
                if not self._missing_logged:
                    logger.info(
                        "MutatingWebhookConfiguration %s does not exist yet; its caBundle is "
                        "set when it appears",
                        self._name,
                    )
                    self._missing_logged = True
                return False
            logger.warning("cannot read MutatingWebhookConfiguration %s: %s", self._name, exc)
            return False
        self._missing_logged = False
        stale = [
            w["name"]
            for w in config.get("webhooks") or []
            if (w.get("clientConfig") or {}).get("caBundle") != self._bundle
        ]
        if not stale:
            return True
        patch = {
            "webhooks": [{"name": n, "clientConfig": {"caBundle": self._bundle}} for n in stale]
        }
        try:
            await self._api.patch_webhook_configuration(self._name, patch)
        except KubeApiError as exc:
            logger.warning("cannot set the caBundle of %s: %s", self._name, exc)
            return False
        logger.info("set the caBundle of MutatingWebhookConfiguration %s", self._name)
        return True

    async def run_forever(self, interval: float = KEEP_INTERVAL) -> None:
        while True:
            try:
                await self.keep()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("checking the webhook's caBundle failed")
            await asyncio.sleep(interval)
