"""The rollout rules (``_decide``), as pure functions: an event and a state in, a decision out.

Proves: a new revision rolls out; the same revision is ignored (and a lost status restored only
when no rollout is running); changed schemas re-check a revision the pods run, and validate one
again that was invalid or still rolling out; the first sight of a ConfigMap, or a revision the
status already names, reconciles, and keeps a halt found in that status; a staged batch with a
NACK halts; a ready pod gets the current revision, or the last good one while halted (only if it
holds nothing), and is left to a running rollout that already counts it; a sweep skips
ConfigMaps mid-rollout or invalid.
"""

from __future__ import annotations

from typing import Any

from hotconf_operator._decide import (
    Action,
    ConfigMapSeen,
    decide,
    halts,
    plan_pod,
    settled,
    snapshot_of,
)
from hotconf_operator._index import PodTarget
from hotconf_operator._outcome import PodOutcome, Verdict
from hotconf_operator._plan import RolloutPolicy
from hotconf_operator._state import ConfigMapState
from hotconf_operator._status import STATUS_ANNOTATION, Phase, RolloutStatus

POD = PodTarget("default", "web-0", "uid-0", "10.0.0.1", 8790)
SCHEMA = "hotconf.dev/schema.app.yaml"


def seen(data: str = "v1", **annotations: str) -> ConfigMapSeen:
    body: dict[str, Any] = {
        "metadata": {
            "namespace": "default",
            "name": "app",
            "uid": "cm",
            "annotations": annotations,
        },
        "data": {"app.yaml": data},
    }
    return ConfigMapSeen.of(body)


def known(event: ConfigMapSeen, *, valid: bool = True, halted: bool = False) -> ConfigMapState:
    """The state the manager holds once ``event``'s revision was validated (or not)."""
    return ConfigMapState(
        ref=event.ref,
        uid=event.uid,
        revision=event.revision,
        snapshot=event.snapshot if valid else None,
        halted=halted,
        schemas=event.schemas,
    )


def status_annotation(event: ConfigMapSeen, phase: Phase) -> str:
    status = RolloutStatus(event.revision, phase, rejected=1, message="bad port", pod="web-1")
    return status.to_annotation()


# -- ConfigMap events


def test_the_first_sight_of_a_configmap_reconciles() -> None:
    decision = decide(seen(), None, rolling=False)
    assert (decision.action, decision.check_first, decision.halt) == (Action.RECONCILE, True, None)


def test_a_new_revision_rolls_out() -> None:
    decision = decide(seen("v2"), known(seen("v1")), rolling=False)
    assert (decision.action, decision.check_first) == (Action.ROLL_OUT, False)


def test_a_new_revision_rolls_out_over_a_running_rollout() -> None:
    assert decide(seen("v2"), known(seen("v1")), rolling=True).action is Action.ROLL_OUT


def test_the_same_revision_is_ignored_and_a_lost_status_restored() -> None:
    event = seen(**{"team": "payments"})  # another annotation changed, or a re-list
    decision = decide(event, known(seen()), rolling=False)
    assert (decision.action, decision.restore_status) == (Action.IGNORE, True)


def test_the_same_revision_mid_rollout_leaves_the_status_to_the_rollout() -> None:
    decision = decide(seen(), known(seen()), rolling=True)
    assert (decision.action, decision.restore_status) == (Action.IGNORE, False)


def test_changed_schemas_recheck_the_revision_the_pods_run() -> None:
    decision = decide(seen(**{SCHEMA: "{}"}), known(seen()), rolling=False)
    assert decision.action is Action.RECHECK


def test_changed_schemas_validate_an_invalid_revision_again() -> None:
    decision = decide(seen(**{SCHEMA: "{}"}), known(seen(), valid=False), rolling=False)
    assert (decision.action, decision.check_first) == (Action.RECONCILE, True)


def test_changed_schemas_mid_rollout_recheck_without_cutting_it() -> None:
    # A validated revision keeps rolling out (its Event and history record too); the manager
    # checks it against the new schemas once that task has ended.
    assert decide(seen(**{SCHEMA: "{}"}), known(seen()), rolling=True).action is Action.RECHECK


def test_changed_schemas_during_validation_validate_again() -> None:
    decision = decide(seen(**{SCHEMA: "{}"}), known(seen(), valid=False), rolling=True)
    assert (decision.action, decision.check_first) == (Action.RECONCILE, True)


def test_a_revision_the_status_already_names_reconciles() -> None:
    # Another replica rolled it out while this one was paused.
    event = seen("v2")
    event = seen("v2", **{STATUS_ANNOTATION: status_annotation(event, Phase.COMPLETE)})
    decision = decide(event, known(seen("v1")), rolling=False)
    assert (decision.action, decision.halt) == (Action.RECONCILE, None)


def test_a_halted_status_of_the_same_revision_is_kept() -> None:
    event = seen("v2")
    event = seen("v2", **{STATUS_ANNOTATION: status_annotation(event, Phase.HALTED)})
    decision = decide(event, None, rolling=False)
    assert (decision.action, decision.halt) == (Action.RECONCILE, ("web-1", "bad port"))


def test_a_halted_status_of_an_older_revision_does_not_halt_the_new_one() -> None:
    old = seen("v1")
    event = seen("v2", **{STATUS_ANNOTATION: status_annotation(old, Phase.HALTED)})
    assert decide(event, None, rolling=False).halt is None
    assert decide(event, known(old, halted=True), rolling=False).action is Action.ROLL_OUT


def test_the_revision_is_the_content_not_the_metadata() -> None:
    assert seen("v1").revision == seen("v1", team="x").revision != seen("v2").revision
    assert snapshot_of({"metadata": {"name": "app"}, "data": {"k": "v"}}).data == {"k": "v"}


# -- staged batches


def outcome(verdict: Verdict) -> PodOutcome:
    return PodOutcome(POD, "r", verdict)


def test_a_nack_in_a_staged_batch_halts() -> None:
    staged = RolloutPolicy(staged=True)
    assert halts(staged, [outcome(Verdict.APPLIED), outcome(Verdict.REJECTED)])
    assert not halts(staged, [outcome(Verdict.APPLIED), outcome(Verdict.PENDING)])
    assert not halts(RolloutPolicy(), [outcome(Verdict.REJECTED)])  # all at once: no halt


# -- pods and sweeps


def test_a_ready_pod_gets_the_current_revision() -> None:
    state = known(seen())
    plan = plan_pod(state, POD, rolling=False)
    assert plan is not None
    assert plan.snapshot is state.snapshot and plan.revision == state.revision
    assert (plan.only_if_empty, plan.current) == (False, True)


def test_while_halted_a_pod_that_holds_nothing_gets_the_last_good_revision() -> None:
    state = known(seen("v2"), halted=True)
    state.last_good = seen("v1").snapshot
    plan = plan_pod(state, POD, rolling=False)
    assert plan is not None
    assert plan.snapshot is state.last_good and plan.revision == state.revision
    assert (plan.only_if_empty, plan.current) == (True, False)


def test_while_halted_without_a_last_good_revision_a_pod_is_left_alone() -> None:
    assert plan_pod(known(seen("v2"), halted=True), POD, rolling=False) is None


def test_an_invalid_revision_gives_a_pod_nothing() -> None:
    assert plan_pod(known(seen(), valid=False), POD, rolling=False) is None
    assert plan_pod(None, POD, rolling=False) is None


def test_a_running_rollout_keeps_the_pods_it_counts_and_leaves_new_ones_to_reconcile() -> None:
    state = known(seen())
    assert plan_pod(state, POD, rolling=True) is not None  # became ready after it started
    state.outcomes[POD.uid] = PodOutcome(POD, state.revision, Verdict.PENDING)
    assert plan_pod(state, POD, rolling=True) is None
    assert plan_pod(state, POD, rolling=False) is not None  # done: a sweep retries it


def test_a_sweep_skips_configmaps_mid_rollout_or_invalid() -> None:
    assert settled(known(seen()), rolling=False)
    assert not settled(known(seen()), rolling=True)
    assert not settled(known(seen(), valid=False), rolling=False)
