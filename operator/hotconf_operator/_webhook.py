"""The mutating admission webhook that injects the sidecar, served by kopf's webhook server.

Registered by the operator's start-up code with :func:`register`; the MutatingWebhookConfiguration
itself belongs to the Helm chart (kopf does not manage it), which points the API server at
``https://<service>:443/inject-sidecar`` (the chart's ``webhook.path``) with
``failurePolicy: Ignore`` so that a broken webhook never blocks pod creation. The injection
itself is :func:`hotconf_operator._injection.inject`, handed to kopf as a body transformation so
that kopf turns the result into a JSON patch.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Final

import kopf

from hotconf_operator._injection import InjectionSettings, inject, wants_injection

__all__ = ["WEBHOOK_ID", "register", "webhook_server"]

logger: Final = logging.getLogger("hotconf.operator.webhook")

#: kopf serves a handler at ``/<id>``; the chart's MutatingWebhookConfiguration uses this path.
WEBHOOK_ID: Final = "inject-sidecar"


def webhook_server(*, port: int, cert_dir: Path | None) -> kopf.WebhookServer:
    """HTTPS on all interfaces with the chart's certificate (re-read when it is renewed).

    Without a certificate directory, kopf generates a self-signed one (development only).
    """
    if cert_dir is None:
        return kopf.WebhookServer(addr="0.0.0.0", port=port)
    return kopf.WebhookServer(
        addr="0.0.0.0",
        port=port,
        certfile=str(cert_dir / "tls.crt"),
        pkeyfile=str(cert_dir / "tls.key"),
    )


def register(registry: kopf.OperatorRegistry, injection: InjectionSettings) -> None:
    """Add the injection handler to ``registry``."""

    @kopf.on.mutate(
        "v1",
        "pods",
        id=WEBHOOK_ID,
        operations=["CREATE"],
        ignore_failures=True,
        side_effects=False,
        registry=registry,
    )
    def inject_sidecar(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        pod: dict[str, Any] = {"metadata": dict(body.metadata), "spec": dict(body.spec)}
        if not wants_injection(pod):
            return

        def transform(raw: Any) -> None:
            inject(raw, injection)

        patch.fns.append(transform)
        logger.info(
            "injecting hotconf-sidecar into pod %s/%s",
            body.metadata.get("namespace", ""),
            body.metadata.get("name") or body.metadata.get("generateName", "?"),
        )
