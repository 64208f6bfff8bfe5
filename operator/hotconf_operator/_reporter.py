"""Writes the rollout status on the ConfigMap and posts its Events; never raises.

Created by ``__main__`` and used by ``_rollout``: :meth:`StatusReporter.write` merge-patches
``hotconf.dev/status`` (a small JSON object, never a copy of the data; an unchanged status is not
written again) and :meth:`StatusReporter.event` posts Kubernetes Events on the ConfigMap through
kopf (validation failure, rollout complete, rollout halted), or, from code kopf did not call (the
reconcile sweep, a pod followed until it answers, a missed change repaired), with its own POST
of the same ``v1`` Event: kopf's poster exists only inside its handlers.
:meth:`StatusReporter.restore` writes the last status again when someone removed it. Nothing
else on a user's ConfigMap is ever written: no finalizer, no kopf bookkeeping annotation. What a
status says is ``_status``.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Mapping
from typing import Any, cast

import kopf

from hotconf_operator._errors import KubeApiError
from hotconf_operator._kubeapi import KubeApi
from hotconf_operator._status import STATUS_ANNOTATION, RolloutStatus, parse_status
from hotconf_wire.protocol import ConfigMapRef

__all__ = ["EVENT_SOURCE", "StatusReporter"]

logger = logging.getLogger("hotconf_operator.status")

#: The component Kubernetes Events name as their source (``reportingComponent``, ``source``).
EVENT_SOURCE = "hotconf-operator"


def _event_body(ref: ConfigMapRef, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"namespace": ref.namespace, "name": ref.name, "uid": uid},
    }


class StatusReporter:
    """Writes the status annotation and posts Events; failures are logged, never raised."""

    def __init__(self, api: KubeApi | None) -> None:
        self._api = api
        self._last: dict[ConfigMapRef, RolloutStatus] = {}
        self._posting: set[asyncio.Task[None]] = set()  # Events posted outside kopf's handlers

    def remember(self, ref: ConfigMapRef, status: RolloutStatus | None) -> None:
        """Seed with what the ConfigMap already carries, so an unchanged status is not rewritten."""
        if status is not None:
            self._last[ref] = status

    def forget(self, ref: ConfigMapRef) -> None:
        self._last.pop(ref, None)

    def last(self, ref: ConfigMapRef) -> RolloutStatus | None:
        return self._last.get(ref)

    async def write(self, ref: ConfigMapRef, status: RolloutStatus) -> None:
        if status.same_counts(self._last.get(ref)):
            return
        status = status.stamped()
        self._last[ref] = status
        await self._annotate(ref, status)

    async def restore(self, ref: ConfigMapRef, annotations: Mapping[str, str]) -> None:
        """Write the last status again if the ConfigMap lost it: the annotation was removed, or
        holds no status of this revision (someone else's edit). The same revision with other
        counts is an earlier write of ours arriving late: left alone."""
        last = self._last.get(ref)
        if last is None:
            return
        seen = parse_status(annotations)
        if seen is not None and seen.revision == last.revision:
            return
        logger.info("status annotation of ConfigMap %s is gone or foreign; writing it again", ref)
        await self._annotate(ref, last)

    async def _annotate(self, ref: ConfigMapRef, status: RolloutStatus) -> None:
        if self._api is None:
            return
        try:
            await self._api.annotate_configmap(
                ref.namespace, ref.name, {STATUS_ANNOTATION: status.to_annotation()}
            )
        except KubeApiError as exc:
            if exc.status == 404:
                return  # deleted meanwhile
            logger.warning("cannot write status of ConfigMap %s: %s", ref, exc)

    def event(
        self, ref: ConfigMapRef, uid: str, *, reason: str, message: str, warning: bool
    ) -> None:
        body = kopf.Body(cast(kopf.RawBody, _event_body(ref, uid)))
        try:
            if warning:
                kopf.warn(body, reason=reason, message=message[:1024])
            else:
                kopf.info(body, reason=reason, message=message[:1024])
        except LookupError:  # outside kopf's handlers: post it ourselves (none in unit tests)
            logger.info("event %s on %s: %s", reason, ref, message)
            if self._api is not None:
                event = _event(ref, uid, reason=reason, message=message[:1024], warning=warning)
                task = asyncio.get_running_loop().create_task(self._post(ref, event))
                self._posting.add(task)
                task.add_done_callback(self._posting.discard)

    async def _post(self, ref: ConfigMapRef, event: dict[str, Any]) -> None:
        assert self._api is not None
        try:
            await self._api.create_event(ref.namespace, event)
        except KubeApiError as exc:
            logger.warning("cannot post Event %s on ConfigMap %s: %s", event["reason"], ref, exc)


def _event(
    ref: ConfigMapRef, uid: str, *, reason: str, message: str, warning: bool
) -> dict[str, Any]:
    """A ``v1`` Event on the ConfigMap, as kopf posts them."""
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds")
    stamp = now.replace("+00:00", "Z")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"namespace": ref.namespace, "generateName": "hotconf-event-"},
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "namespace": ref.namespace,
            "name": ref.name,
            "uid": uid,
        },
        "reason": reason,
        "message": message,
        "type": "Warning" if warning else "Normal",
        "action": "Action",
        "source": {"component": EVENT_SOURCE},
        "reportingComponent": EVENT_SOURCE,
        "reportingInstance": EVENT_SOURCE,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
