"""``--wait``'s rules, without an API server: kubectl's durations, and when the wait ends.

Proves: ``parse_duration`` takes what kubectl's ``--timeout`` takes (Go durations: units
required, combined, fractional; ``0`` alone) and refuses the rest; ``wait_applied`` ends with
APPLIED only when every row's status is ``complete`` for the content's current revision, with
FAILED at the first halted, rejected or invalid one, with TIMED_OUT at the deadline (an empty
selection, an older revision's status, rolling and incomplete all keep it waiting); progress
is written once per change and says pods held with no application apart from those applied; the
outcomes are the documented exit statuses.
"""

from __future__ import annotations

import io
from typing import Any

import pytest

from hotconf_operator._status_wait import WaitOutcome, parse_duration, wait_applied


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0.0), ("30s", 30.0), ("2m", 120.0), ("1h30m", 5400.0), ("1.5h", 5400.0),
     ("500ms", 0.5), ("1m30.5s", 90.5), (".5s", 0.5)],
)  # fmt: skip
def test_durations_as_kubectl_takes_them(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "2x", "m", "1m 2s", "-1s", "1d"])
def test_other_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_exit_statuses_are_the_documented_ones() -> None:
    assert {o.name: o.value for o in WaitOutcome} == {"APPLIED": 0, "TIMED_OUT": 3, "FAILED": 4}


def row(name: str, phase: str, *, revision: str = "sha256:aa", current: str = "sha256:aa",
        **fields: Any) -> dict[str, Any]:  # fmt: skip
    base = {"namespace": "ns", "name": name, "revision": revision, "current_revision": current,
            "phase": phase, "applied": 1, "rejected": 0, "pending": 0, "total": 1, "pod": "",
            "message": ""}  # fmt: skip
    return {**base, **fields}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def run(polls: list[list[dict[str, Any]]], *, timeout: float = 10.0) -> tuple[Any, str, int]:
    clock, progress, calls = Clock(), io.StringIO(), [0]

    def fetch() -> list[dict[str, Any]]:
        calls[0] += 1
        return polls[min(calls[0], len(polls)) - 1]

    result = wait_applied(fetch, timeout=timeout, progress=progress, clock=clock,
                          sleep=clock.sleep)  # fmt: skip
    return result, progress.getvalue(), calls[0]


def test_applied_once_every_current_revision_is_complete() -> None:
    rolling = [row("a", "complete"), row("b", "rolling", applied=0, pending=1)]
    done = [row("a", "complete"), row("b", "complete")]
    result, progress, calls = run([rolling, rolling, done])
    assert (result.outcome, calls) == (WaitOutcome.APPLIED, 3)
    assert progress.count("rollout to finish (rolling)") == 1  # said once, not per poll
    assert 'configmap "ns/b" successfully rolled out' in progress


def test_pods_held_without_an_application_are_said_apart() -> None:
    held = [row("a", "complete", applied=1, held=2, total=3)]
    result, progress, _ = run([held])
    assert result.outcome is WaitOutcome.APPLIED
    assert (
        "1 of 3 pods applied revision aa, 2 held by their sidecar with no application" in progress
    )


@pytest.mark.parametrize("phase", ["halted", "rejected", "invalid"])
def test_failed_at_the_first_halt_rejection_or_invalid_revision(phase: str) -> None:
    bad = row("b", phase, pod="web-2", message="no port")
    result, progress, calls = run([[row("a", "rolling"), bad]])
    assert (result.outcome, calls, result.failed) == (WaitOutcome.FAILED, 1, [bad])
    assert f'configmap "ns/b" rollout {phase} by pod web-2 at revision aa: no port' in progress


@pytest.mark.parametrize(
    "rows",
    [
        pytest.param([], id="nothing-selected"),
        pytest.param([row("a", "complete", revision="sha256:old")], id="older-revision"),
        pytest.param([row("a", "incomplete", pending=1)], id="incomplete"),
        pytest.param([row("a", "rolling")], id="rolling"),
        pytest.param([row("a", "halted", revision="sha256:old")], id="old-halt-is-no-verdict"),
    ],
)
def test_timed_out_while_nothing_says_applied(rows: list[dict[str, Any]]) -> None:
    result, _, calls = run([rows], timeout=3.0)
    assert result.outcome is WaitOutcome.TIMED_OUT
    assert calls == 4  # at 0, 1, 2 and 3 seconds: the last read is at the deadline


def test_a_zero_timeout_reads_once() -> None:
    assert run([[row("a", "complete")]], timeout=0)[0].outcome is WaitOutcome.APPLIED
    assert run([[row("a", "rolling")]], timeout=0)[1:] == (
        'Waiting for configmap "ns/a" rollout to finish (rolling): 1 of 1 pods applied'
        " revision aa...\n",
        1,
    )
