"""Sidecar injection: what the mutating webhook adds to a pod labelled ``hotconf.dev/inject``.

A pure function over the pod's JSON body, so that it is tested without a webhook and reused by
the chart's documentation of the same sidecar. The webhook handler (``_webhook.py``) hands it to
kopf as a body transformation; kopf diffs the result into the JSON patch the API server applies.

What a pod gets:
- the sidecar as a *native sidecar*: an init container with ``restartPolicy: Always``, so the
  kubelet starts it, and waits for its startup probe, before the application containers;
- an ``emptyDir`` shared with every application container at ``/run/hotconf`` for the socket,
  and one private to the sidecar at ``/var/lib/hotconf`` for its last good configs;
- ``HOTCONF_SOCKET`` in every application container;
- ``hotconf.dev/port``: the sidecar's port (the pod's own choice, or ``--sidecar-port``);
- the label ``hotconf.dev/injected: "true"`` (the annotation of the same name too), which a
  PodMonitor selects to scrape the sidecars' ``/metrics`` (labels, not annotations, select);
- the pod's identity through the Downward API and the operator's public key, for verification;
- resource requests and a restricted security context (``--sidecar-security-context``
  replaces it, e.g. for a platform that assigns user ids itself).

Which pods: those labelled ``hotconf.dev/inject: "true"`` (a label, so that the webhook's
``objectSelector`` and the operator's pod watch select them on the API server, as
``sidecar.istio.io/inject`` does). In earlier builds (0.1.0, unreleased) the opt-in was an
annotation of the same name; a pod that still has only the annotation is injected when it
reaches the webhook (the chart's ``legacyAnnotationOptIn`` sends it every pod), with a warning
that names the label to use.

Injecting twice changes nothing; pods without the label (or annotation) are never touched, nor
are pods that already have a ``hotconf-sidecar`` container (added by hand).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Final

from hotconf_operator._index import INJECT_LABEL, INJECT_SELECTOR, PORT_ANNOTATION
from hotconf_wire.envelope import DEFAULT_PORT

__all__ = [
    "ANNOTATION_DEPRECATED",
    "INJECTED_LABEL",
    "INJECT_ANNOTATION",
    "INJECT_LABEL",
    "INJECT_SELECTOR",
    "SIDECAR_NAME",
    "InjectionSettings",
    "asks_by_annotation_only",
    "asks_by_label",
    "hardened_security_context",
    "inject",
    "sidecar_container",
    "wants_injection",
]

#: The opt-in of earlier builds, still honoured with a warning when such a pod reaches the webhook.
INJECT_ANNOTATION: Final = "hotconf.dev/inject"
INJECTED_ANNOTATION: Final = "hotconf.dev/injected"
#: The same mark as a label, for selectors (the chart's PodMonitor).
INJECTED_LABEL: Final = "hotconf.dev/injected"
SIDECAR_NAME: Final = "hotconf-sidecar"
#: What kubectl shows for a pod that asks with the legacy annotation.
ANNOTATION_DEPRECATED: Final = (
    f"hotconf: the {INJECT_ANNOTATION} annotation is deprecated and is honoured only while the "
    f"webhook is sent every pod (legacyAnnotationOptIn); label the pod template "
    f'{INJECT_LABEL}: "true" instead'
)
SOCKET_VOLUME: Final = "hotconf-socket"
STATE_VOLUME: Final = "hotconf-state"
SOCKET_DIR: Final = "/run/hotconf"
STATE_DIR: Final = "/var/lib/hotconf"
SOCKET_PATH: Final = f"{SOCKET_DIR}/hotconf.sock"


@dataclass(frozen=True, kw_only=True)
class InjectionSettings:
    """How the injected sidecar looks; the operator builds it from its own settings."""

    #: The hotconf image; the same image runs the operator and the sidecar.
    image: str
    #: The operator's Ed25519 public key (PEM); not a secret, the sidecar verifies pushes with it.
    public_key_pem: str
    image_pull_policy: str = "IfNotPresent"
    #: The sidecar's HTTP port for pushes from the operator (``hotconf.dev/port``).
    port: int = DEFAULT_PORT
    #: A small sidecar: its target is 45 MB resident (``docs/performance.md`` has the figures).
    requests: dict[str, str] = field(default_factory=lambda: {"cpu": "10m", "memory": "48Mi"})
    limits: dict[str, str] = field(default_factory=lambda: {"memory": "128Mi"})
    #: The sidecar's user; numeric so that ``runAsNonRoot`` can be checked by the kubelet.
    run_as_user: int = 65532
    #: The sidecar container's whole ``securityContext``; None: :func:`hardened_security_context`
    #: of ``run_as_user`` (the Kubernetes "restricted" profile).
    security_context: dict[str, Any] | None = None


def hardened_security_context(run_as_user: int) -> dict[str, Any]:
    """The sidecar's default security context: non-root, read-only root, no privilege
    escalation, no capabilities, the runtime's seccomp profile ("restricted")."""
    return {
        "runAsNonRoot": True,
        "runAsUser": run_as_user,
        "runAsGroup": run_as_user,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _is_true(values: Any, key: str) -> bool:
    return isinstance(values, dict) and str(values.get(key, "")).strip().lower() == "true"


def asks_by_label(pod: dict[str, Any]) -> bool:
    """Whether the pod is labelled ``hotconf.dev/inject: "true"``."""
    return _is_true((pod.get("metadata") or {}).get("labels"), INJECT_LABEL)


def asks_by_annotation_only(pod: dict[str, Any]) -> bool:
    """Whether the pod asks with the legacy annotation and has no label of that name (a label,
    whatever it says, is the pod's answer)."""
    metadata = pod.get("metadata") or {}
    labels = metadata.get("labels") or {}
    has_label = isinstance(labels, dict) and INJECT_LABEL in labels
    return _is_true(metadata.get("annotations"), INJECT_ANNOTATION) and not has_label


def wants_injection(pod: dict[str, Any]) -> bool:
    """Whether the pod asked for the sidecar: the label ``hotconf.dev/inject: "true"``, or the
    annotation of the same name (earlier builds)."""
    return asks_by_label(pod) or asks_by_annotation_only(pod)


def _has_sidecar(spec: dict[str, Any]) -> bool:
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    return any(c.get("name") == SIDECAR_NAME for c in containers)


def _socket_mode(spec: dict[str, Any]) -> str:
    # The socket lives in an emptyDir that only this pod's containers mount. With an fsGroup the
    # kubelet makes that directory group-owned and setgid, so group access is enough; without
    # one, the application may run as any user, so the socket must be open to all of them.
    security = spec.get("securityContext") or {}
    return "0660" if security.get("fsGroup") is not None else "0666"


def sidecar_container(settings: InjectionSettings, *, socket_mode: str = "0660") -> dict[str, Any]:
    """The sidecar container, as injected (also what the chart documents to paste by hand)."""

    def field_env(name: str, path: str) -> dict[str, Any]:
        return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}

    probe = {"httpGet": {"path": "/readyz", "port": settings.port}, "periodSeconds": 1}
    return {
        "name": SIDECAR_NAME,
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["hotconf-sidecar"],
        "restartPolicy": "Always",
        "env": [
            field_env("HOTCONF_POD_NAMESPACE", "metadata.namespace"),
            field_env("HOTCONF_POD_NAME", "metadata.name"),
            field_env("HOTCONF_POD_UID", "metadata.uid"),
            {"name": "HOTCONF_LISTEN", "value": f"0.0.0.0:{settings.port}"},
            {"name": "HOTCONF_SOCKET", "value": SOCKET_PATH},
            {"name": "HOTCONF_SOCKET_MODE", "value": socket_mode},
            {"name": "HOTCONF_STATE_DIR", "value": STATE_DIR},
            {"name": "HOTCONF_OPERATOR_PUBLIC_KEY", "value": settings.public_key_pem},
        ],
        "ports": [{"name": "hotconf", "containerPort": settings.port, "protocol": "TCP"}],
        "startupProbe": {**probe, "failureThreshold": 30},
        "readinessProbe": probe,
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": settings.port}},
        "resources": {
            part: dict(quantities)
            for part, quantities in (("requests", settings.requests), ("limits", settings.limits))
            if quantities
        },
        "securityContext": copy.deepcopy(settings.security_context)
        if settings.security_context is not None
        else hardened_security_context(settings.run_as_user),
        "volumeMounts": [
            {"name": SOCKET_VOLUME, "mountPath": SOCKET_DIR},
            {"name": STATE_VOLUME, "mountPath": STATE_DIR},
        ],
    }


def _port(annotations: dict[str, Any], default: int) -> tuple[int, str | None]:
    """The sidecar's port: the pod's ``hotconf.dev/port`` when it names one, else ``default``;
    with a message when the annotation is there but is not a port number."""
    raw = annotations.get(PORT_ANNOTATION)
    if raw is None:
        return default, None
    text = str(raw).strip()
    if text.isdigit() and 1 <= int(text) <= 65535:
        return int(text), None
    return default, (
        f"hotconf: {PORT_ANNOTATION}={raw!r} is not a port number (1-65535); "
        f"the sidecar listens on {default} and the annotation says so"
    )


def inject(
    pod: dict[str, Any], settings: InjectionSettings, *, warnings: list[str] | None = None
) -> bool:
    """Add the sidecar to ``pod`` in place; return whether anything changed.

    Does nothing for a pod without the opt-in or one that already has the sidecar. The
    sidecar listens on the pod's ``hotconf.dev/port`` if it has one (for an application that
    uses the default port itself), else on ``settings.port``; the annotation then holds the
    port, which is where the operator pushes. A malformed port is replaced by the default, with
    a message added to ``warnings`` (shown to the user by kubectl), as is the use of the
    legacy annotation instead of the label.
    """
    if not wants_injection(pod):
        return False
    if asks_by_annotation_only(pod) and warnings is not None:
        warnings.append(ANNOTATION_DEPRECATED)
    spec = pod.setdefault("spec", {})
    if _has_sidecar(spec):
        return False
    metadata = pod.setdefault("metadata", {})
    annotations = metadata.setdefault("annotations", {})
    port, problem = _port(annotations, settings.port)
    if problem is not None and warnings is not None:
        warnings.append(problem)
    settings = dataclasses.replace(settings, port=port)

    volumes = spec.setdefault("volumes", [])
    names = {v.get("name") for v in volumes}
    if SOCKET_VOLUME not in names:
        volumes.append(
            {"name": SOCKET_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}
        )
    if STATE_VOLUME not in names:
        volumes.append({"name": STATE_VOLUME, "emptyDir": {"sizeLimit": "16Mi"}})

    # Native sidecars start in order: put hotconf first so the socket exists before any other
    # init container or application container that may read the config.
    sidecar = sidecar_container(settings, socket_mode=_socket_mode(spec))
    spec["initContainers"] = [sidecar, *(spec.get("initContainers") or [])]

    for container in spec.get("containers") or []:
        env = container.setdefault("env", [])
        if not any(e.get("name") == "HOTCONF_SOCKET" for e in env):
            env.append({"name": "HOTCONF_SOCKET", "value": SOCKET_PATH})
        mounts = container.setdefault("volumeMounts", [])
        if not any(m.get("name") == SOCKET_VOLUME for m in mounts):
            mounts.append({"name": SOCKET_VOLUME, "mountPath": SOCKET_DIR, "readOnly": False})

    annotations[PORT_ANNOTATION] = str(port)
    annotations[INJECTED_ANNOTATION] = "true"
    metadata.setdefault("labels", {})[INJECTED_LABEL] = "true"
    return True


def injected_copy(pod: dict[str, Any], settings: InjectionSettings) -> dict[str, Any]:
    """A copy of ``pod`` with the sidecar injected (the original is left as it was)."""
    result = copy.deepcopy(pod)
    inject(result, settings)
    return result
