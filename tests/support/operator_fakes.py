"""Fakes at the operator's own boundary, for unit tests of rollouts, reconciles and delivery.

:class:`FakeSidecars` implements ``_delivery.SidecarApi`` in memory: each pod holds what was
pushed to it and answers as its script says (ACK, NACK, unreachable, a refusal), with the wire's
own answer models (``PushAnswer``, ``PodState``). :class:`RecordingReporter` is a
``StatusReporter`` without an API that keeps every status written and every Event posted.
:func:`operator_parts` wires a ``RolloutManager`` and a ``Reconciler`` to them as ``__main__``
does, with a settable list of subscribed pods. No HTTP, no kopf, no API server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from hotconf_operator._decide import snapshot_of
from hotconf_operator._delivery import Deliverer
from hotconf_operator._errors import PodUnreachable, PushRefused
from hotconf_operator._index import PodTarget
from hotconf_operator._metrics import Metrics
from hotconf_operator._reconcile import CurrentRevisionFn, Reconciler
from hotconf_operator._reporter import StatusReporter
from hotconf_operator._rollout import RolloutManager
from hotconf_operator._settings import RepairConfig
from hotconf_operator._signing import SignedPush, Signer
from hotconf_operator._status import RolloutStatus
from hotconf_wire.answers import ClientVerdict, HeldConfig, PodState, PushAnswer
from hotconf_wire.envelope import decode_payload, key_id
from hotconf_wire.errors import REJECT_REASONS
from hotconf_wire.protocol import ConfigMapRef

#: How a fake pod answers: its client ACKs or NACKs, it has no client, it does not answer, or its
#: sidecar refuses pushes with that reason (stale, replayed: someone got there first).
Script = Literal["ack", "nack", "no-clients", "unreachable", "stale", "replayed", "bad_signature"]


def pod(i: int, namespace: str = "default") -> PodTarget:
    return PodTarget(namespace, f"web-{i}", f"uid-{i}", f"10.0.0.{i}", 8790)


@dataclass
class FakeSidecars:
    """Every pod's sidecar, in memory (implements ``hotconf_operator._delivery.SidecarApi``)."""

    scripts: dict[str, Script] = field(default_factory=dict)  # pod uid -> script; default ack
    held: dict[str, dict[ConfigMapRef, HeldConfig]] = field(default_factory=dict)
    pushes: list[tuple[str, str]] = field(default_factory=list)  # (pod name, revision)
    reads: list[str] = field(default_factory=list)  # pod names, per state read
    probes: list[str] = field(default_factory=list)  # pod names, per probe (also a read)
    trusted: dict[str, tuple[str, ...]] = field(default_factory=dict)  # uid -> key ids reported
    #: When set, every push waits for it (a rollout caught mid-way); the push is recorded first.
    gate: asyncio.Event | None = None

    def script(self, target: PodTarget, script: Script) -> None:
        self.scripts[target.uid] = script

    def hold(
        self, target: PodTarget, ref: ConfigMapRef, revision: str, *, nack: bool = False
    ) -> None:
        """Make ``target`` hold ``revision`` already (an earlier push, another replica's)."""
        self.held.setdefault(target.uid, {})[ref] = HeldConfig(
            ref, revision, 1, (self._verdict(revision, "nack" if nack else "ack"),)
        )

    def revision_of(self, target: PodTarget, ref: ConfigMapRef) -> str | None:
        entry = self.held.get(target.uid, {}).get(ref)
        return entry.revision if entry is not None else None

    @staticmethod
    def _verdict(revision: str, result: Literal["ack", "nack"]) -> ClientVerdict:
        message = "bad port" if result == "nack" else ""
        return ClientVerdict("c1", "worker", 7, revision, result, message)

    async def push(self, target: PodTarget, signed: SignedPush) -> PushAnswer:
        push = decode_payload(signed.body)
        snapshot = push.snapshot
        script = self.scripts.get(target.uid, "ack")
        if script == "unreachable":
            raise PodUnreachable(f"push to pod {target.name} failed 3 times; last: refused")
        if script in REJECT_REASONS:
            raise PushRefused(script, "refused by the fake", status=REJECT_REASONS[script])
        self.pushes.append((target.name, snapshot.revision))
        if self.gate is not None:
            await self.gate.wait()
        if push.trust is not None and target.uid in self.trusted:
            self.trusted[target.uid] = tuple(sorted(key_id(k) for k in push.trust))
        held = self.held.setdefault(target.uid, {})
        before = held.get(snapshot.ref)
        unchanged = before is not None and before.revision == snapshot.revision
        clients: tuple[ClientVerdict, ...] = ()
        if script != "no-clients":
            clients = (self._verdict(snapshot.revision, "nack" if script == "nack" else "ack"),)
        held[snapshot.ref] = HeldConfig(snapshot.ref, snapshot.revision, 2, clients)
        status: Literal["applied", "unchanged"] = "unchanged" if unchanged else "applied"
        return PushAnswer(status, snapshot.revision, 2, clients)

    async def probe(self, target: PodTarget, *, within: float) -> PodState:
        self.probes.append(target.name)
        return await self.state(target)

    async def state(self, target: PodTarget) -> PodState:
        self.reads.append(target.name)
        if self.scripts.get(target.uid) == "unreachable":
            raise PodUnreachable(f"state read to pod {target.name} failed 3 times")
        return PodState(
            target.ref,
            tuple(self.held.get(target.uid, {}).values()),
            trusted=self.trusted.get(target.uid),
        )


class RecordingReporter(StatusReporter):
    """A StatusReporter without an API that keeps what it would write and post."""

    def __init__(self) -> None:
        super().__init__(None)
        self.written: list[RolloutStatus] = []
        self.events: list[tuple[str, bool]] = []  # (reason, warning)
        self.messages: list[str] = []  # the Events' messages, in the same order
        self.restored: int = 0
        #: When set, the next write is held "in flight" until it is set (later writes are not):
        #: ``written`` is in the order the writes landed.
        self.hold_next: asyncio.Event | None = None

    async def write(self, ref: ConfigMapRef, status: RolloutStatus) -> None:
        before = self.last(ref)
        await super().write(ref, status)
        changed = self.last(ref) is not before
        held, self.hold_next = self.hold_next, None
        if held is not None:
            await held.wait()
        if changed:
            self.written.append(status)

    async def restore(self, ref: ConfigMapRef, annotations: Mapping[str, str]) -> None:
        self.restored += 1
        await super().restore(ref, annotations)

    def event(
        self, ref: ConfigMapRef, uid: str, *, reason: str, message: str, warning: bool
    ) -> None:
        self.events.append((reason, warning))
        self.messages.append(message)

    @property
    def reasons(self) -> list[str]:
        return [reason for reason, _ in self.events]


@dataclass
class OperatorParts:
    """A manager and a reconciler wired to fakes, as ``__main__`` wires the real ones."""

    sidecars: FakeSidecars
    reporter: RecordingReporter
    metrics: Metrics
    deliverer: Deliverer
    manager: RolloutManager
    reconciler: Reconciler
    pods: list[PodTarget]  # the subscribed pods (the kopf index); change it in place

    @property
    def status(self) -> RolloutStatus:
        assert self.reporter.written, "no status written"
        return self.reporter.written[-1]


#: Probes and grace periods short enough for unit tests (the defaults are in RepairConfig).
FAST_REPAIR = RepairConfig(probe_first=0.01, probe_every=0.02, window=2.0, drift_grace=0.05)


@dataclass
class FakeApi:
    """The ConfigMaps as the API holds them, whether or not a watch event told the operator."""

    configmaps: dict[ConfigMapRef, dict[str, Any]] = field(default_factory=dict)

    def put(self, body: dict[str, Any]) -> dict[str, Any]:
        meta = body["metadata"]
        self.configmaps[ConfigMapRef(meta["namespace"], meta["name"])] = body
        return body

    async def current_revision(self, ref: ConfigMapRef) -> str | None:
        body = self.configmaps.get(ref)
        return None if body is None else snapshot_of(body).revision

    async def read_configmap(self, ref: ConfigMapRef) -> Mapping[str, Any] | None:
        return self.configmaps.get(ref)


def operator_parts(
    pods: list[PodTarget],
    *,
    current_revision: CurrentRevisionFn | None = None,
    api: FakeApi | None = None,
    paused: Callable[[], bool] = lambda: False,
) -> OperatorParts:
    """``api``: the reconciler confirms revisions against it and repairs drift from it."""
    sidecars = FakeSidecars()
    reporter = RecordingReporter()
    metrics = Metrics()
    deliverer = Deliverer(pusher=sidecars, signer=Signer.generate(), metrics=metrics)
    subscribed = list(pods)
    manager = RolloutManager(
        deliverer=deliverer,
        reporter=reporter,
        metrics=metrics,
        targets=lambda ref: list(subscribed),
    )
    reconciler = Reconciler(
        manager,
        deliverer=deliverer,
        current_revision=api.current_revision if api is not None else current_revision,
        read_configmap=api.read_configmap if api is not None else None,
        repair=FAST_REPAIR,
        metrics=metrics,
        reporter=reporter,
        paused=paused,
    )
    return OperatorParts(sidecars, reporter, metrics, deliverer, manager, reconciler, subscribed)


def configmap(
    data: Mapping[str, str], *, name: str = "app", annotations: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """A ConfigMap body as a watch event carries it."""
    return {
        "metadata": {
            "namespace": "default",
            "name": name,
            "uid": f"cm-{name}",
            "annotations": dict(annotations or {}),
        },
        "data": dict(data),
    }
