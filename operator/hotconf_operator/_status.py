"""The rollout status: what the one annotation the operator writes on a ConfigMap says.

Pure: ``_rollout`` counts a ConfigMap's state into a :class:`RolloutStatus` with :func:`status_of`
(pods applied, held, rejected and pending of the current revision, the first rejection or the first
pending pod, a :class:`PodLine` for each pod that has not applied it, how long the revision took to
converge, the :class:`Phase`) and hands it to :class:`hotconf_operator._reporter.StatusReporter`,
which writes it; the ``hotconf status`` command (``_status_command``) and ``_decide`` read the same
annotation back with :func:`parse_status`. No I/O and no kopf here.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from enum import StrEnum

from hotconf_operator._index import PodTarget
from hotconf_operator._outcome import Verdict
from hotconf_operator._state import ConfigMapState

__all__ = [
    "PODS_LISTED",
    "STATUS_ANNOTATION",
    "Phase",
    "PodLine",
    "RolloutStatus",
    "parse_status",
    "status_of",
]

STATUS_ANNOTATION = "hotconf.dev/status"
#: Pods named in ``pods`` at most (the others are counted in ``unlisted``): the annotation stays
#: small at any scale, and the first few name where to look.
PODS_LISTED = 10
_POD_MESSAGE_MAX = 200


class Phase(StrEnum):
    """Where the rollout of one revision stands."""

    INVALID = "invalid"  # validation failed; pushed nowhere
    ROLLING = "rolling"  # pushes in progress
    COMPLETE = "complete"  # every subscribed pod applied it (or its sidecar holds it: "held")
    INCOMPLETE = "incomplete"  # done, but some pods did not answer; reconcile retries them
    REJECTED = "rejected"  # some pod NACKed it (non-staged rollout: the others applied it)
    HALTED = "halted"  # staged rollout stopped at a NACK; remaining pods keep the old config


@dataclass(frozen=True, slots=True)
class PodLine:
    """One pod that has not applied the revision: why, and what its application runs."""

    pod: str
    state: str  # pending, rejected or held (a Verdict other than applied)
    runs: str = ""  # the revision its application runs ("": not known)
    message: str = ""

    @classmethod
    def of(cls, obj: Mapping[str, object]) -> PodLine:
        return cls(
            pod=str(obj.get("pod", "")),
            state=str(obj.get("state", "")),
            runs=str(obj.get("runs", "")),
            message=str(obj.get("message", "")),
        )


@dataclass(frozen=True, slots=True)
class RolloutStatus:
    """What ``hotconf.dev/status`` says (the field names are its JSON keys)."""

    revision: str
    phase: Phase
    applied: int = 0  # every application connected in the pod ACKed it
    rejected: int = 0
    pending: int = 0
    total: int = 0
    message: str = ""  # the first rejection's reason, the first pending pod's, the problem
    pod: str = ""  # the pod that message is about
    #: The sidecar holds it and no application is connected (exited, or not started yet):
    #: counted apart from applied, and not pending (it is delivered; the next one to connect
    #: gets it at once).
    held: int = 0
    #: A line for each pod that has not applied it (pending, rejected, held), at most
    #: PODS_LISTED; ``unlisted`` counts the others.
    pods: tuple[PodLine, ...] = ()
    unlisted: int = 0
    #: Seconds from this operator seeing the revision to every pod having it (None: not yet).
    converged_seconds: float | None = None
    time: str = ""  # RFC 3339 UTC, when this status was written

    def to_annotation(self) -> str:
        obj = asdict(self)
        obj["phase"] = str(self.phase)
        obj["message"] = self.message[:512]
        for key, empty in (("pods", ()), ("unlisted", 0), ("converged_seconds", None)):
            if getattr(self, key) == empty:
                del obj[key]  # small annotations: an empty field is left out
        if self.converged_seconds is not None:
            obj["converged_seconds"] = round(self.converged_seconds, 3)
        return json.dumps(obj, separators=(",", ":"), sort_keys=True)

    def stamped(self) -> RolloutStatus:
        now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        return replace(self, time=now.isoformat().replace("+00:00", "Z"))

    def same_counts(self, other: RolloutStatus | None) -> bool:
        return other is not None and replace(self, time="") == replace(other, time="")


def parse_status(annotations: Mapping[str, str] | None) -> RolloutStatus | None:
    """The status found on a ConfigMap, or None (absent or unreadable)."""
    raw = (annotations or {}).get(STATUS_ANNOTATION)
    if not raw:
        return None
    try:
        obj = json.loads(raw)
        return RolloutStatus(
            revision=str(obj["revision"]),
            phase=Phase(obj["phase"]),
            applied=int(obj.get("applied", 0)),
            rejected=int(obj.get("rejected", 0)),
            pending=int(obj.get("pending", 0)),
            total=int(obj.get("total", 0)),
            held=int(obj.get("held", 0)),
            message=str(obj.get("message", "")),
            pod=str(obj.get("pod", "")),
            pods=tuple(PodLine.of(p) for p in obj.get("pods", ()) if isinstance(p, dict)),
            unlisted=int(obj.get("unlisted", 0)),
            converged_seconds=(
                None if obj.get("converged_seconds") is None else float(obj["converged_seconds"])
            ),
            time=str(obj.get("time", "")),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def status_of(state: ConfigMapState, targets: Sequence[PodTarget], *, done: bool) -> RolloutStatus:
    """The status of ``state``'s revision over ``targets`` (the pods subscribed now).

    A pod counts with its outcome for this revision, or as pending without one. The phase:
    invalid without a valid snapshot; rolling while not ``done``; then halted, rejected (any
    pod rejected it), incomplete (any pod pending) or complete (held pods included: they have
    it). The message and pod name are the first rejection's, or the halt's, or (incomplete) the
    first pending pod's, or (complete) the first held pod's. Each pod not applied gets a
    :class:`PodLine`, in the order of ``targets``."""
    counts = dict.fromkeys(Verdict, 0)
    first: dict[Verdict, tuple[str, str]] = {}  # verdict -> (pod, message) of the first one
    lines: list[PodLine] = []
    for target in targets:
        outcome = state.outcomes.get(target.uid)
        if outcome is not None and outcome.revision == state.revision:
            verdict, message, runs = outcome.verdict, outcome.message, outcome.runs
        else:
            verdict, message, runs = Verdict.PENDING, "not answered yet", ""
        counts[verdict] += 1
        if verdict is Verdict.APPLIED:
            continue
        first.setdefault(verdict, (target.name, message))
        if len(lines) < PODS_LISTED:
            lines.append(PodLine(target.name, str(verdict), runs, message[:_POD_MESSAGE_MAX]))
    if state.snapshot is None:
        phase = Phase.INVALID
    elif not done:
        phase = Phase.ROLLING
    elif state.halted:
        phase = Phase.HALTED
    elif counts[Verdict.REJECTED]:
        phase = Phase.REJECTED
    elif counts[Verdict.PENDING]:
        phase = Phase.INCOMPLETE
    else:
        phase = Phase.COMPLETE
    pod, message = "", ""
    if Verdict.REJECTED in first:
        pod, message = first[Verdict.REJECTED]
    elif phase is Phase.HALTED:
        pod, message = state.halt_reason
    elif Verdict.PENDING in first and phase is not Phase.INVALID:
        pod, message = first[Verdict.PENDING]
    elif Verdict.HELD in first and phase is Phase.COMPLETE:
        pod, message = first[Verdict.HELD]
    not_applied = len(targets) - counts[Verdict.APPLIED]
    return RolloutStatus(
        revision=state.revision,
        phase=phase,
        applied=counts[Verdict.APPLIED],
        rejected=counts[Verdict.REJECTED],
        pending=counts[Verdict.PENDING],
        total=len(targets),
        held=counts[Verdict.HELD],
        message=message,
        pod=pod,
        pods=tuple(lines) if phase is not Phase.INVALID else (),
        unlisted=not_applied - len(lines) if phase is not Phase.INVALID else 0,
        converged_seconds=state.converged_seconds,
    )
