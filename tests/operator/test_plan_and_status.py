"""Staged rollout planning and the status annotation, as pure functions.

Proves: batches cover every pod exactly once, first N then counts or percentages; bad
annotations fall back to safe defaults with an explanation; the status annotation is small
JSON that round-trips and carries no config value.
"""

from __future__ import annotations

import json

from hotconf_operator._plan import RolloutPolicy, plan_batches, split
from hotconf_operator._status import STATUS_ANNOTATION, Phase, RolloutStatus, parse_status


def policy(**annotations: str) -> RolloutPolicy:
    return RolloutPolicy.from_annotations({f"hotconf.dev/{k.replace('_', '-')}": v
                                           for k, v in annotations.items()})  # fmt: skip


def test_all_at_once_by_default() -> None:
    assert plan_batches(7, policy()) == [7]
    assert plan_batches(0, policy()) == []


def test_staged_first_then_percentage_batches() -> None:
    staged = policy(rollout="staged", rollout_first="1", rollout_batch="25%")
    assert plan_batches(10, staged) == [1, 3, 3, 3]
    assert plan_batches(1, staged) == [1]
    counted = policy(rollout="staged", rollout_first="2", rollout_batch="3")
    assert plan_batches(10, counted) == [2, 3, 3, 2]
    assert split(list("abcdefghij"), [2, 3, 3, 2]) == [
        ["a", "b"], ["c", "d", "e"], ["f", "g", "h"], ["i", "j"]
    ]  # fmt: skip


def test_bad_annotations_explain_and_fall_back() -> None:
    bad = policy(rollout="staged", rollout_first="zero", rollout_batch="200%")
    assert bad.staged and bad.first == 1 and bad.batch == "25%" and "rollout-first" in bad.problem
    unknown = policy(rollout="canary")
    assert not unknown.staged and "canary" in unknown.problem


def test_status_annotation_round_trips() -> None:
    status = RolloutStatus(
        revision="sha256:" + "a" * 64, phase=Phase.HALTED, applied=1, rejected=1, pending=2,
        total=4, message="web-1: bad port", pod="web-1",
    ).stamped()  # fmt: skip
    raw = status.to_annotation()
    assert len(raw) < 400
    assert json.loads(raw)["phase"] == "halted"
    assert parse_status({STATUS_ANNOTATION: raw}) == status
    assert parse_status({STATUS_ANNOTATION: "{not json"}) is None
    assert parse_status({}) is None
    assert status.same_counts(RolloutStatus(**{**json.loads(raw), "phase": Phase.HALTED}))
