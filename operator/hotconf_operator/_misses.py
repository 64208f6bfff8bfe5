"""Injection misses: pods that asked for the sidecar and run without it.

The chart registers the webhook with ``failurePolicy: Ignore``, so a pod created while the
operator is down (or restarting, or unreachable, or without a sidecar image) is admitted as it
was: labelled ``hotconf.dev/inject: "true"`` but without a ``hotconf-sidecar`` container. Pod
specs cannot gain containers later, so such a pod stays without hot reload until it is
recreated. ``_handlers`` feeds every event of the pod watch it already has (no extra API
calls) to :meth:`MissTracker.pod_event`, which:

* posts one Warning Event ``SidecarNotInjected`` on the pod, saying what to do;
* counts it in ``hotconf_operator_injection_misses_total`` and keeps the gauge
  ``hotconf_operator_pods_missing_sidecar`` equal to the number of such pods now.

The tracker remembers pod uids only, so one Event per pod and operator start: after a restart
the operator lists the pods again and warns once more about those still missing it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Final

from hotconf_operator._injection import SIDECAR_NAME, wants_injection
from hotconf_operator._metrics import Metrics

__all__ = ["MISS_REASON", "MissTracker", "missing_sidecar"]

logger: Final = logging.getLogger("hotconf_operator.misses")

#: The reason of the Warning Event posted on a pod that was admitted without the sidecar.
MISS_REASON: Final = "SidecarNotInjected"

#: ``post(body, reason, message)``: posts a Warning Event on the object (kopf.warn in the operator).
Poster = Callable[[Mapping[str, Any], str, str], None]


def missing_sidecar(pod: Mapping[str, Any]) -> bool:
    """Whether the pod asked for the sidecar (label, or the old annotation) and has no
    ``hotconf-sidecar``."""
    if not wants_injection(dict(pod)):
        return False
    spec = pod.get("spec") or {}
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    return not any(c.get("name") == SIDECAR_NAME for c in containers)


class MissTracker:
    """Notices pods that asked for the sidecar and run without it; one Event each, and the two
    metrics."""

    def __init__(self, *, metrics: Metrics, post: Poster, why: str) -> None:
        self._metrics = metrics
        self._post = post
        self._why = why
        self._missing: set[str] = set()

    @property
    def missing(self) -> int:
        return len(self._missing)

    def pod_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        uid = str(meta.get("uid") or "")
        if not uid:
            return
        gone = event_type == "DELETED" or bool(meta.get("deletionTimestamp"))
        if gone or not missing_sidecar(body):
            self._forget(uid)
            return
        if uid in self._missing:
            return
        self._missing.add(uid)
        self._metrics.injection_misses.inc()
        self._metrics.pods_missing_sidecar.set(len(self._missing))
        name = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
        owner = next(iter(meta.get("ownerReferences") or []), None)
        fix = (
            f"delete the pod and its {owner.get('kind', 'controller')} {owner.get('name', '')} "
            "recreates it with the sidecar"
            if owner
            else "delete and recreate the pod"
        )
        message = (
            f"Pod asks for the sidecar (hotconf.dev/inject=true) but has no {SIDECAR_NAME} "
            f"container, so it gets no hot configuration reloads: {self._why}. To fix, {fix} "
            "(or roll the workload, e.g. kubectl rollout restart deployment/NAME) once the "
            "hotconf operator is running."
        )
        logger.warning("pod %s has no %s: %s", name, SIDECAR_NAME, self._why)
        try:
            self._post(body, MISS_REASON, message)
        except Exception:  # an Event is best effort; the metric and the log have it
            logger.exception("cannot post the %s Event on pod %s", MISS_REASON, name)

    def _forget(self, uid: str) -> None:
        if uid in self._missing:
            self._missing.discard(uid)
            self._metrics.pods_missing_sidecar.set(len(self._missing))
