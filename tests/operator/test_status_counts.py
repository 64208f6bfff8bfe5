"""The status arithmetic (``_status.status_of``): one ConfigMap's state counted over its pods.

Proves: each subscribed pod counts once, with its outcome for the current revision or as
pending; an outcome of another revision or of a pod no longer subscribed does not count; the
phase is invalid, rolling, halted, rejected, incomplete or complete in that order of precedence;
the message and pod name come from the first rejection (in pod order), then the halt, then the
first pending pod of an incomplete rollout (not the first pod that answered); every pod that has
not applied it is listed (a bounded list) with its state, the revision it runs and why; a pod
whose sidecar holds the revision with no application connected is held, not applied.
"""

from __future__ import annotations

from hotconf_operator._index import PodTarget
from hotconf_operator._outcome import NO_APPLICATION, PodOutcome, Verdict
from hotconf_operator._state import ConfigMapState
from hotconf_operator._status import (
    PODS_LISTED,
    STATUS_ANNOTATION,
    Phase,
    PodLine,
    RolloutStatus,
    parse_status,
    status_of,
)
from hotconf_wire.protocol import ConfigMapRef, ConfigSnapshot

REF = ConfigMapRef("default", "app")
REV = "sha256:" + "1" * 64
OLD = "sha256:" + "0" * 64
PODS = [PodTarget("default", f"web-{i}", f"uid-{i}", f"10.0.0.{i}", 8790) for i in range(3)]


def state(*outcomes: PodOutcome, valid: bool = True, halted: bool = False) -> ConfigMapState:
    snapshot = ConfigSnapshot("default", "app", REV, {"k": "v"}) if valid else None
    return ConfigMapState(
        ref=REF,
        uid="cm-uid",
        revision=REV,
        snapshot=snapshot,
        halted=halted,
        halt_reason=("web-9", "carried over a restart"),
        outcomes={o.pod.uid: o for o in outcomes},
    )


def said(pod: int, verdict: Verdict, message: str = "", revision: str = REV) -> PodOutcome:
    return PodOutcome(PODS[pod], revision, verdict, message)


def counts(status: RolloutStatus) -> tuple[str, int, int, int, int]:
    return (status.phase, status.applied, status.rejected, status.pending, status.total)


def test_every_pod_applied_is_complete() -> None:
    status = status_of(state(*(said(i, Verdict.APPLIED) for i in range(3))), PODS, done=True)
    assert counts(status) == (Phase.COMPLETE, 3, 0, 0, 3)
    assert (status.revision, status.message, status.pod) == (REV, "", "")


def test_a_pod_without_an_outcome_is_pending_and_the_rollout_incomplete() -> None:
    status = status_of(state(said(0, Verdict.APPLIED), said(1, Verdict.APPLIED)), PODS, done=True)
    assert counts(status) == (Phase.INCOMPLETE, 2, 0, 1, 3)
    nobody = status_of(state(), PODS, done=True)
    assert (nobody.pod, nobody.message) == ("web-0", "not answered yet")


def test_an_incomplete_status_names_the_pending_pod_not_the_first_answer() -> None:
    status = status_of(state(said(0, Verdict.APPLIED), said(1, Verdict.APPLIED)), PODS, done=True)
    assert (status.pod, status.message) == ("web-2", "not answered yet")
    assert status.pods == (PodLine("web-2", "pending", "", "not answered yet"),)


def test_every_pod_not_applied_is_listed_with_what_it_runs_and_why() -> None:
    outcomes = (
        PodOutcome(PODS[0], REV, Verdict.REJECTED, "worker: bad port", runs=OLD),
        PodOutcome(PODS[1], REV, Verdict.PENDING, "push failed 3 times", runs=OLD),
        said(2, Verdict.APPLIED),
    )
    status = status_of(state(*outcomes), PODS, done=True)
    assert status.pods == (
        PodLine("web-0", "rejected", OLD, "worker: bad port"),
        PodLine("web-1", "pending", OLD, "push failed 3 times"),
    )
    assert parse_status({STATUS_ANNOTATION: status.to_annotation()}) == status


def test_a_pod_with_no_application_is_held_not_applied() -> None:
    outcomes = (said(0, Verdict.APPLIED), said(1, Verdict.HELD, NO_APPLICATION),
                said(2, Verdict.HELD, NO_APPLICATION))  # fmt: skip
    status = status_of(state(*outcomes), PODS, done=True)
    assert (status.phase, status.applied, status.held, status.pending) == (Phase.COMPLETE, 1, 2, 0)
    assert (status.pod, status.message) == ("web-1", NO_APPLICATION)
    assert [line.state for line in status.pods] == ["held", "held"]


def test_the_list_of_pods_is_bounded_and_counts_the_others() -> None:
    many = [PodTarget("default", f"web-{i}", f"uid-{i}", "10.0.1.1", 8790) for i in range(25)]
    status = status_of(state(), many, done=True)
    assert (len(status.pods), status.unlisted, status.pending) == (
        PODS_LISTED,
        25 - PODS_LISTED,
        25,
    )
    assert len(status.to_annotation()) < 2048


def test_an_unreachable_pod_says_why_it_is_pending() -> None:
    status = status_of(state(said(0, Verdict.PENDING, "push failed 3 times")), PODS, done=True)
    assert counts(status) == (Phase.INCOMPLETE, 0, 0, 3, 3)
    assert status.message == "push failed 3 times"


def test_an_outcome_of_another_revision_counts_as_pending() -> None:
    stale = said(2, Verdict.APPLIED, revision=OLD)
    status = status_of(state(said(0, Verdict.APPLIED), said(1, Verdict.APPLIED), stale), PODS,
                       done=True)  # fmt: skip
    assert counts(status) == (Phase.INCOMPLETE, 2, 0, 1, 3)


def test_only_subscribed_pods_count() -> None:
    status = status_of(state(*(said(i, Verdict.APPLIED) for i in range(3))), PODS[:2], done=True)
    assert counts(status) == (Phase.COMPLETE, 2, 0, 0, 2)


def test_the_first_rejection_in_pod_order_names_pod_and_reason() -> None:
    outcomes = (said(2, Verdict.REJECTED, "late"), said(1, Verdict.REJECTED, "bad port"))
    status = status_of(state(said(0, Verdict.APPLIED), *outcomes), PODS, done=True)
    assert counts(status) == (Phase.REJECTED, 1, 2, 0, 3)
    assert (status.pod, status.message) == ("web-1", "bad port")


def test_invalid_beats_every_other_phase() -> None:
    status = status_of(state(said(0, Verdict.REJECTED), valid=False, halted=True), PODS, done=False)
    assert status.phase is Phase.INVALID


def test_rolling_until_done() -> None:
    status = status_of(state(said(0, Verdict.REJECTED), halted=True), PODS, done=False)
    assert counts(status) == (Phase.ROLLING, 0, 1, 2, 3)


def test_halted_names_the_rejection_or_the_reason_carried_over() -> None:
    rejected = status_of(state(said(0, Verdict.REJECTED, "nope"), halted=True), PODS, done=True)
    assert counts(rejected) == (Phase.HALTED, 0, 1, 2, 3)
    assert (rejected.pod, rejected.message) == ("web-0", "nope")
    carried = status_of(state(said(0, Verdict.PENDING), halted=True), PODS, done=True)
    assert (carried.phase, carried.pod, carried.message) == (
        Phase.HALTED, "web-9", "carried over a restart"
    )  # fmt: skip
