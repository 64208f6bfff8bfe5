"""Which pods subscribe to which ConfigMap: the pod side of kopf's in-memory index.

``_handlers`` registers :func:`index_pod` as a kopf index over pods annotated
``hotconf.dev/configmaps``; kopf keeps its result per pod and drops it when the pod goes away,
so the operator never lists pods per event. A pod is indexed only once it is Running with a pod
IP: before that there is no sidecar to push to. ``_rollout`` and ``_reconcile`` read the index
with :func:`targets_of`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hotconf_wire.envelope import DEFAULT_PORT, PodRef
from hotconf_wire.protocol import ConfigMapRef

__all__ = [
    "CONFIGMAPS_ANNOTATION",
    "INJECT_LABEL",
    "INJECT_SELECTOR",
    "PORT_ANNOTATION",
    "PodTarget",
    "index_pod",
    "pod_ready",
    "pod_target",
    "targets_of",
]

CONFIGMAPS_ANNOTATION = "hotconf.dev/configmaps"
PORT_ANNOTATION = "hotconf.dev/port"
#: The opt-in label: the operator watches only pods with it, and the webhook injects them.
INJECT_LABEL = "hotconf.dev/inject"
#: The same opt-in as a label selector (the webhook's objectSelector, the pod watch's default).
INJECT_SELECTOR = f"{INJECT_LABEL}=true"


@dataclass(frozen=True, slots=True, order=True)
class PodTarget:
    """One pod's sidecar: who it is (for the envelope) and where it listens."""

    namespace: str
    name: str
    uid: str
    ip: str
    port: int

    @property
    def ref(self) -> PodRef:
        return PodRef(namespace=self.namespace, name=self.name, uid=self.uid)

    @property
    def base_url(self) -> str:
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"http://{host}:{self.port}"


def subscribed_configmaps(annotations: Mapping[str, str]) -> list[str]:
    raw = annotations.get(CONFIGMAPS_ANNOTATION, "")
    return sorted({name.strip() for name in raw.split(",") if name.strip()})


def pod_target(body: Mapping[str, Any]) -> PodTarget | None:
    """The pod's sidecar address, or None while it is not Running with an IP."""
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    ip = status.get("podIP")
    if status.get("phase") != "Running" or not ip or meta.get("deletionTimestamp"):
        return None
    annotations = meta.get("annotations") or {}
    try:
        port = int(annotations.get(PORT_ANNOTATION, DEFAULT_PORT))
    except ValueError:
        port = DEFAULT_PORT
    return PodTarget(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        ip=str(ip),
        port=port,
    )


def pod_ready(body: Mapping[str, Any]) -> bool:
    """Whether the pod's ``Ready`` condition is True (a container restart turns it False)."""
    conditions = (body.get("status") or {}).get("conditions") or ()
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def index_pod(body: Mapping[str, Any]) -> dict[ConfigMapRef, PodTarget]:
    """The kopf index function: one entry per ConfigMap the pod subscribes to."""
    target = pod_target(body)
    if target is None:
        return {}
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    return {
        ConfigMapRef(target.namespace, name): target for name in subscribed_configmaps(annotations)
    }


def targets_of(index: Mapping[Any, Iterable[PodTarget]], ref: ConfigMapRef) -> list[PodTarget]:
    """Every pod subscribed to ``ref``, sorted by name (staged rollouts go in this order)."""
    try:
        store = index[ref]
    except KeyError:
        return []
    return sorted(set(store), key=lambda t: (t.name, t.uid))
