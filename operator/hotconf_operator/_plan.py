"""Staged rollout planning: which pods go in which batch. Pure functions, no I/O.

A ConfigMap opts in with annotations (read by :meth:`RolloutPolicy.from_annotations`)::

    hotconf.dev/rollout: "staged"        # default "all": every pod at once (bounded concurrency)
    hotconf.dev/rollout-first: "1"       # pods in the first batch (default 1)
    hotconf.dev/rollout-batch: "25%"     # later batches: a count, or a percentage of all pods

``_rollout`` pushes batch after batch and halts at the first batch holding a NACK.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

__all__ = [
    "BATCH_ANNOTATION",
    "FIRST_ANNOTATION",
    "ROLLOUT_ANNOTATION",
    "RolloutPolicy",
    "plan_batches",
    "split",
]

ROLLOUT_ANNOTATION = "hotconf.dev/rollout"
FIRST_ANNOTATION = "hotconf.dev/rollout-first"
BATCH_ANNOTATION = "hotconf.dev/rollout-batch"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RolloutPolicy:
    """How one ConfigMap rolls out; ``problem`` explains an annotation that was ignored."""

    staged: bool = False
    first: int = 1
    batch: str = "25%"
    problem: str = ""

    @classmethod
    def from_annotations(cls, annotations: Mapping[str, str]) -> RolloutPolicy:
        mode = annotations.get(ROLLOUT_ANNOTATION, "all").strip().lower()
        if mode not in ("staged", "all"):
            return cls(problem=f"{ROLLOUT_ANNOTATION}={mode!r} is not 'staged' or 'all'")
        if mode == "all":
            return cls()
        first_raw = annotations.get(FIRST_ANNOTATION, "1").strip()
        batch = annotations.get(BATCH_ANNOTATION, "25%").strip()
        try:
            first = int(first_raw)
            _batch_size(batch, 100)
            if first < 1:
                raise ValueError
        except ValueError:
            return cls(
                staged=True,
                problem=f"{FIRST_ANNOTATION}={first_raw!r} / {BATCH_ANNOTATION}={batch!r}: "
                "expected a positive count and a count or percentage; using 1 and 25%",
            )
        return cls(staged=True, first=first, batch=batch)


def _batch_size(batch: str, total: int) -> int:
    if batch.endswith("%"):
        percent = float(batch[:-1])
        if not 0 < percent <= 100:
            raise ValueError(batch)
        return max(1, math.ceil(total * percent / 100))
    size = int(batch)
    if size < 1:
        raise ValueError(batch)
    return size


def plan_batches(total: int, policy: RolloutPolicy) -> list[int]:
    """Batch sizes summing to ``total``: everything at once, or first N then batches."""
    if total <= 0:
        return []
    if not policy.staged:
        return [total]
    sizes = [min(policy.first, total)]
    step = _batch_size(policy.batch, total)
    while sum(sizes) < total:
        sizes.append(min(step, total - sum(sizes)))
    return sizes


def split(items: Sequence[T], sizes: Sequence[int]) -> list[list[T]]:
    out: list[list[T]] = []
    start = 0
    for size in sizes:
        out.append(list(items[start : start + size]))
        start += size
    return out
