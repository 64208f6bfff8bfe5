"""The operator's garbage-collector policy: a frozen heap and a larger young generation.

``__main__`` calls :meth:`HeapKeeper.prepare` before kopf starts and runs
:meth:`HeapKeeper.run_forever` as a task once it has started. An operator watching 1,000 pods
holds a few hundred thousand long-lived objects (kopf's copies of every pod and ConfigMap, its
index, the modules); each full collection walked all of them, and a rollout, which allocates
for every push in flight at once, triggered full collections (perf: ~15% of the operator's CPU
during rollouts in the garbage collector). So:

* the first generation's threshold is raised (:data:`GEN0_THRESHOLD` allocations instead of
  700): the objects of a push in flight mostly die before a collection looks at them, instead of
  being promoted to older generations (and counted towards the next full collection);
* the long-lived heap is frozen (``gc.freeze()``: the collector no longer walks it): once with a
  full collection first, by :meth:`HeapKeeper.prepare` before kopf starts, when no change can
  be waiting; then without one, once the initial lists are indexed (``settle`` seconds after
  start), and again whenever a full collection ran since (the unfrozen heap grew: many new pods)
  or ``interval`` seconds passed, always between rollouts.

A freeze without a collection takes microseconds (it moves the survivors into the permanent
generation), where unfreezing and collecting the whole heap took 17 ms five seconds after start
and ~190 ms with 600,000 objects: no stop-the-world pause is ever scheduled while the operator
watches (issue 14; ``docs/performance.md``). The automatic collections that remain walk only
what was allocated since the last freeze. The price: cyclic garbage among objects frozen while
alive is never freed (reference counting still frees every object not in a cycle, which is what
kopf's copies of pods and ConfigMaps are); freezing only between rollouts keeps the objects of
a rollout in flight out of it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable
from typing import Any

__all__ = ["GEN0_THRESHOLD", "HeapKeeper"]

logger = logging.getLogger("hotconf_operator.gc")

#: Allocations (minus deallocations) of container objects between young collections. A push in
#: flight holds ~100 objects (request, response, futures, timer), so 1,000 pods hold ~100,000.
GEN0_THRESHOLD = 20_000


class HeapKeeper:
    """Freezes the long-lived heap between rollouts; see the module docstring."""

    def __init__(
        self,
        *,
        busy: Callable[[], bool],
        settle: float = 5.0,
        interval: float = 600.0,
        spacing: float = 60.0,
        check: float = 2.0,
    ) -> None:
        """``busy``: whether a rollout is running (no freeze then); ``settle``: seconds after
        start before the first freeze; ``interval``: seconds between freezes at most;
        ``spacing``: seconds between freezes at least; ``check``: seconds between looks for a
        full collection since."""
        self._busy = busy
        self._settle = settle
        self._interval = interval
        self._spacing = spacing
        self._check = check
        self._full_collections = 0
        self._frozen_at: float | None = None

    def apply_thresholds(self) -> None:
        _, gen1, gen2 = gc.get_threshold()
        gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)

    def prepare(self) -> float:
        """Before kopf starts: raise the threshold, collect the whole heap (the imports'
        garbage) and freeze what survived; returns the seconds it took."""
        self.apply_thresholds()
        started = time.perf_counter()
        gc.collect()
        gc.freeze()
        return time.perf_counter() - started

    def _on_collection(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and info.get("generation") == 2:
            self._full_collections += 1

    def refreeze(self) -> float:
        """Freeze everything alive now, without a collection; returns the seconds it took."""
        started = time.perf_counter()
        gc.freeze()
        self._full_collections = 0
        self._frozen_at = time.monotonic()
        return time.perf_counter() - started

    def _due(self) -> bool:
        if self._frozen_at is None:
            return True
        since = time.monotonic() - self._frozen_at
        return since >= self._interval or (since >= self._spacing and self._full_collections > 0)

    async def run_forever(self) -> None:
        """Freeze after ``settle`` seconds, then whenever due and no rollout runs."""
        gc.callbacks.append(self._on_collection)
        try:
            await asyncio.sleep(self._settle)
            while True:
                if self._due() and not self._busy():
                    took = self.refreeze()
                    logger.debug(
                        "heap frozen: %d objects, %.3f ms", gc.get_freeze_count(), took * 1e3
                    )
                await asyncio.sleep(self._check)
        finally:
            gc.callbacks.remove(self._on_collection)
