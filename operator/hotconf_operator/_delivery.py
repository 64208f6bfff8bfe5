"""Bring one pod to one revision of one ConfigMap, and say how it went.

:class:`Deliverer` is shared by ``_rollout`` (a new revision, pushed at once) and ``_reconcile``
(a late pod, a restarted sidecar or operator: ``GET /v1/state`` first, push only if the pod holds
another revision). It turns every answer into a :class:`PodOutcome`: ``applied`` when every
client of the pod ACKed (or none is connected yet: the sidecar holds it for them), ``rejected``
when a client NACKed or the sidecar refused the envelope, ``pending`` when the pod did not answer
or a client timed out. It also counts pushes by outcome for the metrics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from prometheus_client import Counter

from hotconf.protocol import ConfigSnapshot
from hotconf_operator._errors import PodUnreachable, PushFailed, PushRefused
from hotconf_operator._index import PodTarget
from hotconf_operator._metrics import Metrics
from hotconf_operator._pusher import Pusher
from hotconf_operator._signing import Signer

__all__ = ["Deliverer", "PodOutcome", "Verdict", "held_revision", "verdict_of_clients"]


class Verdict(StrEnum):
    APPLIED = "applied"
    REJECTED = "rejected"
    PENDING = "pending"


@dataclass(frozen=True, slots=True)
class PodOutcome:
    """One pod's answer to one revision."""

    pod: PodTarget
    revision: str
    verdict: Verdict
    message: str = ""


def verdict_of_clients(clients: Sequence[Mapping[str, Any]] | None) -> tuple[Verdict, str]:
    """Any NACK rejects; else any timeout leaves it pending; else it is applied."""
    pending = ""
    for client in clients or ():
        result = client.get("result")
        who = client.get("client") or client.get("id") or "client"
        if result == "nack":
            return Verdict.REJECTED, f"{who} (pid {client.get('pid')}): {client.get('message', '')}"
        if result not in ("ack", None) and not pending:
            pending = f"{who} (pid {client.get('pid')}) answered {result}"
    if pending:
        return Verdict.PENDING, pending
    return Verdict.APPLIED, ""


def held_revision(state: Mapping[str, Any], snapshot: ConfigSnapshot) -> Mapping[str, Any] | None:
    """The ``configmaps[]`` entry of a ``/v1/state`` answer for this ConfigMap, if any."""
    for entry in state.get("configmaps") or ():
        if (
            isinstance(entry, Mapping)
            and entry.get("namespace") == snapshot.namespace
            and entry.get("name") == snapshot.name
        ):
            return entry
    return None


class Deliverer:
    """Pushes (or checks, then pushes) one snapshot to one pod."""

    def __init__(self, *, pusher: Pusher, signer: Signer, metrics: Metrics) -> None:
        self._pusher = pusher
        self._signer = signer
        self._metrics = metrics
        self._counters: dict[str, Counter] = {}  # outcome -> its child of the pushes counter

    def _count(self, outcome: str) -> None:
        counter = self._counters.get(outcome)
        if counter is None:
            counter = self._counters[outcome] = self._metrics.pushes.labels(outcome=outcome)
        counter.inc()

    def _outcome(self, pod: PodTarget, snap: ConfigSnapshot, v: Verdict, msg: str) -> PodOutcome:
        return PodOutcome(pod=pod, revision=snap.revision, verdict=v, message=msg)

    async def held(self, pod: PodTarget, snapshot: ConfigSnapshot) -> Mapping[str, Any] | None:
        """What the pod reports holding for this ConfigMap; raises PushFailed."""
        return held_revision(await self._pusher.state(pod), snapshot)

    async def deliver(
        self, pod: PodTarget, snapshot: ConfigSnapshot, *, check_first: bool
    ) -> PodOutcome:
        if check_first:
            try:
                entry = await self.held(pod, snapshot)
            except PushFailed as exc:
                self._count("unreachable")
                return self._outcome(pod, snapshot, Verdict.PENDING, str(exc))
            if entry is not None and entry.get("revision") == snapshot.revision:
                verdict, message = verdict_of_clients(entry.get("clients"))
                return self._outcome(pod, snapshot, verdict, message)
        body = self._signer.push_body(pod.ref, snapshot)
        try:
            answer = await self._pusher.push(pod, body)
        except PodUnreachable as exc:
            self._count("unreachable")
            return self._outcome(pod, snapshot, Verdict.PENDING, str(exc))
        except PushRefused as exc:
            self._count("refused")
            if exc.reason in ("stale", "replayed"):
                # Someone (another replica, or an earlier attempt) got there first: ask.
                return (
                    await self.deliver(pod, snapshot, check_first=True)
                    if not check_first
                    else (self._outcome(pod, snapshot, Verdict.PENDING, f"sidecar: {exc}"))
                )
            return self._outcome(pod, snapshot, Verdict.REJECTED, f"sidecar refused: {exc}")
        verdict, message = verdict_of_clients(answer.get("clients"))
        if verdict is Verdict.APPLIED and answer.get("status") == "unchanged":
            self._count("unchanged")
        else:
            self._count(str(verdict))
        return self._outcome(pod, snapshot, verdict, message)
