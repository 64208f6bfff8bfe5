"""The mutating admission webhook that injects the sidecar, served by kopf's webhook server.

``_handlers.register`` calls :func:`register` on the operator's registry when the webhook port
is not 0, and ``_handlers.configure`` sets ``settings.admission.server`` to
:func:`webhook_server`. The MutatingWebhookConfiguration belongs to the Helm chart (kopf does not
manage it: ``settings.admission.managed`` stays unset), which points the API server at
``https://<service>:443/inject-sidecar`` (the chart's ``webhook.path``) with
``failurePolicy: Ignore`` so that a broken webhook never blocks pod creation; ``_misses`` makes
the pods admitted without the sidecar visible.

The injection itself is :func:`hotconf_operator._injection.inject`, run inside the handler on a
copy of the pod; kopf diffs the result into the JSON patch. The handler never raises: kopf
answers ``allowed: false`` for a failed handler, which would refuse the pod.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import kopf

from hotconf_operator._injection import InjectionSettings, inject, wants_injection

__all__ = ["NO_IMAGE_REASON", "WEBHOOK_ID", "register", "webhook_server"]

logger: Final = logging.getLogger("hotconf_operator.webhook")

#: kopf serves a handler at ``/<id>``; the chart's MutatingWebhookConfiguration uses this path.
WEBHOOK_ID: Final = "inject-sidecar"

#: Why nothing is injected when the operator was started without a sidecar image.
NO_IMAGE_REASON: Final = (
    "the operator has no sidecar image to inject (set --sidecar-image / HOTCONF_SIDECAR_IMAGE; "
    "the Helm chart sets it)"
)


def webhook_server(*, port: int, cert_dir: Path | None) -> kopf.WebhookServer:
    """HTTPS on all interfaces with the chart's certificate (kopf re-reads it when it changes).

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


def _pod_name(body: kopf.Body) -> str:
    meta = body.metadata
    name = meta.get("name") or (str(meta.get("generateName") or "") + "*")
    return f"{meta.get('namespace', '')}/{name}"


def register(
    registry: kopf.OperatorRegistry,
    injection: InjectionSettings | None,
    *,
    injected: Callable[[], None] = lambda: None,
) -> None:
    """Add the injection handler to ``registry``.

    With ``injection`` None (no sidecar image) the webhook answers every pod unchanged, with an
    admission warning for the pods that asked for the sidecar. ``injected`` is called once per
    pod injected for real (not for dry runs), for the metric.
    """

    @kopf.on.mutate(
        "v1",
        "pods",
        id=WEBHOOK_ID,
        operations=["CREATE"],
        ignore_failures=True,
        side_effects=False,
        registry=registry,
    )
    async def inject_sidecar(
        body: kopf.Body, patch: kopf.Patch, dryrun: bool, warnings: list[str], **_: Any
    ) -> None:
        pod: dict[str, Any] = {"metadata": dict(body.metadata), "spec": dict(body.spec)}
        if not wants_injection(pod):
            return
        if injection is None:
            warnings.append(f"hotconf: sidecar not injected: {NO_IMAGE_REASON}")
            logger.warning("not injecting pod %s: %s", _pod_name(body), NO_IMAGE_REASON)
            return
        try:
            pod = copy.deepcopy(pod)
            problems: list[str] = []
            changed = inject(pod, injection, warnings=problems)
        except Exception:  # a malformed pod spec: admit it as it is, never refuse it
            logger.exception("cannot inject pod %s; admitting it unchanged", _pod_name(body))
            return
        # kubectl shows these to whoever created the pod; a pod made by a controller (a
        # Deployment's ReplicaSet) has no one to show them to, so the log has them too.
        warnings.extend(problems)
        for problem in problems:
            logger.warning("pod %s: %s", _pod_name(body), problem)
        if not changed:
            return

        def transform(raw: Any) -> None:
            raw["metadata"] = pod["metadata"]
            raw["spec"] = pod["spec"]

        patch.fns.append(transform)
        if not dryrun:
            injected()
        logger.info("injecting hotconf-sidecar into pod %s", _pod_name(body))
