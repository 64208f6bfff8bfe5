"""What the operator knows about each enabled ConfigMap: :class:`ConfigMapState` and the table.

One owner: ``_rollout.RolloutManager`` creates, changes and drops these; it is the only module
that holds a :class:`ConfigMapStates`. Everyone else gets answers, not the state:
``_decide`` reads a state to decide (pure functions), ``_status`` counts a state into a
:class:`~hotconf_operator._status.RolloutStatus`, and ``_reconcile`` asks the manager for a
frozen plan per pod and hands the outcome back to it. A rollout in progress is orchestration,
not state: the manager keeps the tasks apart.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from hotconf_operator._outcome import PodOutcome
from hotconf_operator._plan import RolloutPolicy
from hotconf_wire.protocol import ConfigMapRef, ConfigSnapshot

__all__ = ["ConfigMapState", "ConfigMapStates"]


@dataclass
class ConfigMapState:
    """What the operator knows about one ConfigMap and its current revision."""

    ref: ConfigMapRef
    uid: str
    revision: str
    snapshot: ConfigSnapshot | None = None  # None until the revision passed validation
    policy: RolloutPolicy = field(default_factory=RolloutPolicy)
    halted: bool = False
    halt_reason: tuple[str, str] = ("", "")  # (pod, message) carried over an operator restart
    last_good: ConfigSnapshot | None = None  # last revision every pod applied (in memory only)
    outcomes: dict[str, PodOutcome] = field(default_factory=dict)  # pod uid -> outcome
    #: The schema annotations (``hotconf.dev/schema.<key>``) this revision was validated with.
    schemas: tuple[tuple[str, str], ...] = ()
    seen_at: float = field(default_factory=time.monotonic)  # when this revision was first seen
    #: Seconds from ``seen_at`` to the first complete status (None: not complete yet).
    converged_seconds: float | None = None

    def for_new_pods(self) -> ConfigSnapshot | None:
        """What a pod that was not part of the rollout should get."""
        return self.last_good if self.halted else self.snapshot

    def record(self, outcome: PodOutcome) -> bool:
        """Keep ``outcome`` if it is about the current revision; whether it was kept."""
        if outcome.revision != self.revision:
            return False
        self.outcomes[outcome.pod.uid] = outcome
        return True


class ConfigMapStates:
    """Every known ConfigMap's state, by reference. Held by ``RolloutManager`` only."""

    def __init__(self) -> None:
        self._states: dict[ConfigMapRef, ConfigMapState] = {}

    def get(self, ref: ConfigMapRef) -> ConfigMapState | None:
        return self._states.get(ref)

    def put(self, state: ConfigMapState) -> None:
        """Make ``state`` the one of its ConfigMap (replacing an older revision's)."""
        self._states[state.ref] = state

    def pop(self, ref: ConfigMapRef) -> ConfigMapState | None:
        return self._states.pop(ref, None)

    def refs(self) -> list[ConfigMapRef]:
        return sorted(self._states)

    def __iter__(self) -> Iterator[ConfigMapState]:
        return iter(list(self._states.values()))

    def __len__(self) -> int:
        return len(self._states)
