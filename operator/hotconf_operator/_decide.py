"""What to do about a ConfigMap event, a ready pod or a sweep: pure functions, no I/O.

``_rollout.RolloutManager`` turns each watch event into a :class:`ConfigMapSeen` and calls
:func:`decide` with the state it holds for that ConfigMap; it then acts on the
:class:`Decision`. A staged rollout stops where :func:`halts` says so. ``_reconcile`` gets a
:class:`PodPlan` from the manager, which calls :func:`plan_pod`, and sweeps only ConfigMaps that
are :func:`settled`. Nothing here awaits, talks to the API or to a sidecar, or changes a state:
these are the rules, testable without either (``tests/operator/test_rollout_decisions.py``).

The content revision (:func:`hotconf_wire.protocol.compute_revision` over ``data`` and
``binaryData``) decides:

* the same revision with the same schema annotations (a change of other annotations, our status
  included, or a re-list) is :attr:`Action.IGNORE`; the status is written again if someone
  removed it, unless a rollout in progress is about to write its own;
* the same revision with changed schema annotations is :attr:`Action.RECHECK` when it passed
  validation: once its rollout (if one is running) has ended, validate it again and warn if it
  fails, push nothing;
* a new revision is :attr:`Action.ROLL_OUT`: validate, then push to every pod;
* the first sight of a ConfigMap (start-up, a restart), a revision the status on the ConfigMap
  already names (another replica rolled it out while this one was paused), and a revision to
  validate again (it was invalid, or still being validated, when its schemas changed) is
  :attr:`Action.RECONCILE`: validate, ask each pod what it holds, push only where it differs.
  A halted status of the same revision is kept: nothing more is pushed.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from hotconf_operator._history import changed_by
from hotconf_operator._index import PodTarget
from hotconf_operator._outcome import PodOutcome, Verdict
from hotconf_operator._plan import RolloutPolicy
from hotconf_operator._state import ConfigMapState
from hotconf_operator._status import Phase, RolloutStatus, parse_status
from hotconf_operator._validation import SCHEMA_ANNOTATION_PREFIX
from hotconf_wire.protocol import ConfigMapRef, ConfigSnapshot, compute_revision

__all__ = [
    "Action",
    "ConfigMapSeen",
    "Decision",
    "PodPlan",
    "decide",
    "halts",
    "plan_pod",
    "schema_annotations",
    "settled",
    "snapshot_of",
]


def snapshot_of(body: Mapping[str, Any]) -> ConfigSnapshot:
    """The ConfigMap's content as a snapshot, with its content revision."""
    meta = body.get("metadata") or {}
    data = {str(k): str(v) for k, v in (body.get("data") or {}).items()}
    binary = {str(k): base64.b64decode(v) for k, v in (body.get("binaryData") or {}).items()}
    return ConfigSnapshot(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        revision=compute_revision(data, binary),
        data=data,
        binary_data=binary,
    )


def schema_annotations(annotations: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The ConfigMap's ``hotconf.dev/schema.<key>`` annotations, in a comparable form."""
    return tuple(
        sorted(
            (k, str(v)) for k, v in annotations.items() if k.startswith(SCHEMA_ANNOTATION_PREFIX)
        )
    )


@dataclass(frozen=True, slots=True)
class ConfigMapSeen:
    """A watch event (listing, added, modified) of an enabled ConfigMap, as the rules read it."""

    snapshot: ConfigSnapshot
    uid: str
    annotations: Mapping[str, str]
    schemas: tuple[tuple[str, str], ...]
    policy: RolloutPolicy
    status: RolloutStatus | None  # the status annotation found on it (None: none, unreadable)
    #: (field manager, time) of the last write of its data, for the history ("", "": unknown).
    changed_by: tuple[str, str] = ("", "")

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> ConfigMapSeen:
        meta = body.get("metadata") or {}
        annotations: Mapping[str, str] = meta.get("annotations") or {}
        return cls(
            snapshot=snapshot_of(body),
            uid=str(meta.get("uid", "")),
            annotations=annotations,
            schemas=schema_annotations(annotations),
            policy=RolloutPolicy.from_annotations(annotations),
            status=parse_status(annotations),
            changed_by=changed_by(meta.get("managedFields")),
        )

    @property
    def ref(self) -> ConfigMapRef:
        return self.snapshot.ref

    @property
    def revision(self) -> str:
        return self.snapshot.revision


class Action(StrEnum):
    """What the manager does about one :class:`ConfigMapSeen` (see the module docstring)."""

    IGNORE = "ignore"
    RECHECK = "recheck"
    ROLL_OUT = "roll out"
    RECONCILE = "reconcile"


@dataclass(frozen=True, slots=True)
class Decision:
    """An :class:`Action` and what acting on it needs to know."""

    action: Action
    #: IGNORE: write the last status again if the ConfigMap lost it (no rollout is running).
    restore_status: bool = False
    #: RECONCILE: the revision was halted before (pod, message): stay halted, push nothing.
    halt: tuple[str, str] | None = None

    @property
    def check_first(self) -> bool:
        """Whether each pod is asked what it holds before it is pushed to."""
        return self.action is Action.RECONCILE


def decide(event: ConfigMapSeen, state: ConfigMapState | None, *, rolling: bool) -> Decision:
    """The rule for ``event``, given what is known of its ConfigMap (``state``; ``rolling``:
    a rollout or schema check of that state is running)."""
    revalidate = False
    if state is not None and state.revision == event.revision:
        if state.schemas == event.schemas:
            return Decision(Action.IGNORE, restore_status=not rolling)
        if state.snapshot is not None:
            # Validated: it rolls out (or has); the check follows its rollout, never cuts it.
            return Decision(Action.RECHECK)
        revalidate = True  # it was invalid and may pass now, or its validation is under way
    previous = event.status
    handled = previous is not None and previous.revision == event.revision
    if state is not None and not handled and not revalidate:
        return Decision(Action.ROLL_OUT)
    if previous is not None and handled and previous.phase is Phase.HALTED:
        return Decision(Action.RECONCILE, halt=(previous.pod, previous.message))
    return Decision(Action.RECONCILE)


@dataclass(frozen=True, slots=True)
class PodPlan:
    """What the reconciler does for one pod of one ConfigMap."""

    snapshot: ConfigSnapshot  # what the pod should hold
    revision: str  # the ConfigMap's revision as this replica knows it (confirmed before a push)
    only_if_empty: bool  # halted: push only to a pod that holds no revision of it
    current: bool  # the snapshot is the current revision: its outcome counts in the status


def plan_pod(state: ConfigMapState | None, pod: PodTarget, *, rolling: bool) -> PodPlan | None:
    """What a pod that (re)appeared, or that a sweep visits, should get; None: leave it."""
    if state is None:
        return None
    snapshot = state.for_new_pods()
    if snapshot is None:  # invalid, and no last good revision to fall back on
        return None
    current = snapshot is state.snapshot
    if rolling and current and pod.uid in state.outcomes:
        # The running rollout covers pods indexed when it started; a pod that was not (it just
        # became ready) is pushed here, the others are left to the rollout.
        return None
    # A halted rollout changes nothing on pods that hold a config; a pod holding none gets the
    # last revision every pod had applied, when this process knows it.
    return PodPlan(snapshot, state.revision, only_if_empty=state.halted, current=current)


def settled(state: ConfigMapState, *, rolling: bool) -> bool:
    """Whether a sweep reconciles this ConfigMap's pods: no rollout running, a valid revision."""
    return not rolling and state.snapshot is not None


def halts(policy: RolloutPolicy, batch: Iterable[PodOutcome]) -> bool:
    """Whether a rollout stops after ``batch``: it is staged and a pod of the batch rejected it
    (the pods not reached keep their config)."""
    return policy.staged and any(outcome.verdict is Verdict.REJECTED for outcome in batch)
