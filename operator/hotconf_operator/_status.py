"""The rollout status: what the one annotation the operator writes on a ConfigMap says.

Pure: ``_rollout`` counts a ConfigMap's state into a :class:`RolloutStatus` with
:func:`status_of` (pods applied, rejected and pending of the current revision, the first
rejection, the :class:`Phase`) and hands it to :class:`hotconf_operator._reporter.StatusReporter`,
which writes it; the ``hotconf status`` command (``_status_command``) and ``_decide`` read the
same annotation back with :func:`parse_status`. No I/O and no kopf here.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from enum import StrEnum

from hotconf_operator._index import PodTarget
from hotconf_operator._outcome import PodOutcome, Verdict
from hotconf_operator._state import ConfigMapState

__all__ = [
    "STATUS_ANNOTATION",
    "Phase",
    "RolloutStatus",
    "parse_status",
    "status_of",
]

STATUS_ANNOTATION = "hotconf.dev/status"


class Phase(StrEnum):
    """Where the rollout of one revision stands."""

    INVALID = "invalid"  # validation failed; pushed nowhere
    ROLLING = "rolling"  # pushes in progress
    COMPLETE = "complete"  # every subscribed pod applied it
    INCOMPLETE = "incomplete"  # done, but some pods did not answer; reconcile retries them
    REJECTED = "rejected"  # some pod NACKed it (non-staged rollout: the others applied it)
    HALTED = "halted"  # staged rollout stopped at a NACK; remaining pods keep the old config


@dataclass(frozen=True, slots=True)
class RolloutStatus:
    """What ``hotconf.dev/status`` says (JSON keys in brackets)."""

    revision: str
    phase: Phase
    applied: int = 0
    rejected: int = 0
    pending: int = 0
    total: int = 0
    message: str = ""  # first rejection's reason, or the validation problem
    pod: str = ""  # name of the first pod that rejected it
    time: str = ""  # RFC 3339 UTC, when this status was written

    def to_annotation(self) -> str:
        obj = asdict(self)
        obj["phase"] = str(self.phase)
        obj["message"] = self.message[:512]
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
            message=str(obj.get("message", "")),
            pod=str(obj.get("pod", "")),
            time=str(obj.get("time", "")),
        )
    except (ValueError, KeyError, TypeError):
        return None


def status_of(state: ConfigMapState, targets: Sequence[PodTarget], *, done: bool) -> RolloutStatus:
    """The status of ``state``'s revision over ``targets`` (the pods subscribed now).

    A pod counts with its outcome for this revision, or as pending without one. The phase:
    invalid without a valid snapshot; rolling while not ``done``; then halted, rejected (any
    pod rejected it), incomplete (any pod pending) or complete. The message and pod name are
    the first rejection's, or the halt's, or (incomplete) the first outcome's message."""
    counts = {Verdict.APPLIED: 0, Verdict.REJECTED: 0, Verdict.PENDING: 0}
    first_rejection: PodOutcome | None = None
    for target in targets:
        outcome = state.outcomes.get(target.uid)
        verdict = (
            outcome.verdict
            if outcome is not None and outcome.revision == state.revision
            else Verdict.PENDING
        )
        counts[verdict] += 1
        if verdict is Verdict.REJECTED and first_rejection is None:
            first_rejection = outcome
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
    message = ""
    pod = ""
    if first_rejection is not None:
        message, pod = first_rejection.message, first_rejection.pod.name
    elif phase is Phase.HALTED:
        pod, message = state.halt_reason
    elif phase is Phase.INCOMPLETE:
        pending = next(
            (state.outcomes.get(t.uid) for t in targets if state.outcomes.get(t.uid)), None
        )
        message = pending.message if pending is not None else "pods not answered yet"
    return RolloutStatus(
        revision=state.revision,
        phase=phase,
        applied=counts[Verdict.APPLIED],
        rejected=counts[Verdict.REJECTED],
        pending=counts[Verdict.PENDING],
        total=len(targets),
        message=message,
        pod=pod,
    )
