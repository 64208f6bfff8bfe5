"""What the operator knows about each enabled ConfigMap: :class:`ConfigMapState`.

``_rollout.RolloutManager`` keeps one per ConfigMap; ``_status`` counts a state into a
:class:`~hotconf_operator._status.RolloutStatus`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from hotconf_operator._outcome import PodOutcome
from hotconf_operator._plan import RolloutPolicy
from hotconf_wire.protocol import ConfigMapRef, ConfigSnapshot

__all__ = ["ConfigMapState"]


@dataclass
class ConfigMapState:
    """What the operator knows about one ConfigMap."""

    ref: ConfigMapRef
    uid: str
    revision: str
    snapshot: ConfigSnapshot | None = None  # None while the revision is invalid
    policy: RolloutPolicy = field(default_factory=RolloutPolicy)
    halted: bool = False
    halt_reason: tuple[str, str] = ("", "")  # (pod, message) carried over an operator restart
    last_good: ConfigSnapshot | None = None  # last revision every pod applied (in memory only)
    outcomes: dict[str, PodOutcome] = field(default_factory=dict)  # pod uid -> outcome
    task: asyncio.Task[None] | None = None
    #: The schema annotations (``hotconf.dev/schema.<key>``) this revision was validated with.
    schemas: tuple[tuple[str, str], ...] = ()

    @property
    def rolling(self) -> bool:
        return self.task is not None and not self.task.done()

    def for_new_pods(self) -> ConfigSnapshot | None:
        """What a pod that was not part of the rollout should get."""
        return self.last_good if self.halted else self.snapshot
