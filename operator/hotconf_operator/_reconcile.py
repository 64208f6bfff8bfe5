"""Reconciliation: pods that missed a rollout are brought to the ConfigMap's current revision.

Two callers. ``_handlers`` calls :meth:`Reconciler.pod_ready` when a subscribed pod becomes
Running with an IP (a new pod, or one whose IP changed); a background loop started by
``_handlers`` on start-up calls :meth:`Reconciler.sweep` every ``reconcile_interval`` seconds,
which catches sidecars that restarted and pods that were unreachable during a rollout. Both ask
the sidecar (``GET /v2/state``) first and push only where it holds another revision or trusts
other keys than the operator announces (a key rotation: an ``unchanged`` push), so a sweep over
healthy pods pushes nothing and restarts no application.

The reconciler holds no ConfigMap state: it asks ``_rollout.RolloutManager`` what each pod
should get (a frozen ``_decide.PodPlan``) and which ConfigMaps are settled, delivers with the
:class:`~hotconf_operator._delivery.Deliverer` it is given (``__main__`` shares one with the
manager), and hands each outcome back to the manager, which records it and writes the status.

Before it pushes, the reconciler asks the API (``current_revision``, one GET per ConfigMap,
reused for :data:`CONFIRM_TTL` seconds) whether the revision it knows is still the ConfigMap's
current one. The in-memory revision can be stale: a replica paused by kopf peering sees no watch
events while another replica rolls out newer revisions, and when it resumes it may see pods
before it sees the ConfigMap again. Pushing from stale knowledge would roll pods back; a
ConfigMap whose revision is not confirmed is skipped (the watch brings the new revision).

Two repairs, with ``_settings.RepairConfig``:

* **A pod that did not answer is followed** (``Deliverer.on_unreachable``): probed with one
  short ``GET /v2/state`` at intervals doubling from ``probe_first`` to ``probe_every``, and
  reconciled as soon as it answers (after a running rollout of the ConfigMap ends), for up to
  ``window`` seconds; then the sweep takes over. So a sidecar that was killed, restarting or
  cut off when a revision was pushed gets it about ``probe_every`` after it is back, not at the
  next sweep. A pod whose readiness changes on the pod watch is reconciled at once too.
* **A missed watch event is repaired.** When the API holds another revision than the one this
  replica last saw (or no longer holds the ConfigMap) and no event changes that for
  ``drift_grace`` seconds, the ConfigMap is read and handled as its event would have been
  (``RolloutManager.configmap_seen``). A change that no replica rolled out (the status on the
  ConfigMap does not name it) is counted in ``hotconf_operator_missed_changes`` and named in a
  ``MissedChange`` Warning Event; a change another replica rolled out while this one was paused
  is only adopted (its reconcile pushes nothing where pods hold it). A replica that kopf
  peering paused repairs nothing: it gets no events by design, the active replica rolls the
  change out, and kopf lists everything again when this one resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hotconf_operator._decide import ConfigMapSeen
from hotconf_operator._delivery import Deliverer
from hotconf_operator._errors import KubeApiError, PushFailed
from hotconf_operator._index import PodTarget
from hotconf_operator._metrics import Metrics
from hotconf_operator._outcome import PodOutcome, Verdict
from hotconf_operator._reporter import StatusReporter
from hotconf_operator._rollout import RolloutManager
from hotconf_operator._settings import RepairConfig
from hotconf_wire.protocol import ConfigMapRef, ConfigSnapshot

__all__ = ["CONFIRM_TTL", "CurrentRevisionFn", "ReadConfigMapFn", "Reconciler"]

logger = logging.getLogger("hotconf_operator.reconcile")

#: The ConfigMap's revision as the API has it now (None: deleted); raises KubeApiError.
CurrentRevisionFn = Callable[[ConfigMapRef], Awaitable[str | None]]
#: The ConfigMap as the API has it now (None: deleted); raises KubeApiError.
ReadConfigMapFn = Callable[[ConfigMapRef], Awaitable[Mapping[str, Any] | None]]
#: Seconds a confirmed revision is trusted: a burst of new pods costs one GET per ConfigMap.
CONFIRM_TTL = 1.0


@dataclass
class _Followed:
    """A pod that did not answer, and the ConfigMaps it missed."""

    target: PodTarget
    refs: set[ConfigMapRef] = field(default_factory=set)


class Reconciler:
    """Brings individual pods up to date; never touches a ConfigMap mid-rollout."""

    def __init__(
        self,
        manager: RolloutManager,
        *,
        deliverer: Deliverer,
        current_revision: CurrentRevisionFn | None = None,
        read_configmap: ReadConfigMapFn | None = None,
        repair: RepairConfig | None = None,
        metrics: Metrics | None = None,
        reporter: StatusReporter | None = None,
        paused: Callable[[], bool] = lambda: False,
    ) -> None:
        """``paused``: whether kopf peering paused this replica (``_peering.PauseWatcher``); a
        paused replica repairs no missed change: it gets no events by design."""
        self._manager = manager
        self._deliverer = deliverer
        self._current_revision = current_revision
        self._read_configmap = read_configmap
        self._repair = repair or RepairConfig()
        self._metrics = metrics
        self._reporter = reporter
        self._paused = paused
        self._followed: dict[str, _Followed] = {}  # pod uid -> what it missed
        self._drifting: set[ConfigMapRef] = set()  # a drift check is waiting out its grace
        deliverer.on_unreachable = self._follow
        self._confirmed: dict[ConfigMapRef, tuple[str, float]] = {}  # ref -> (revision, when)
        self._confirm_locks: dict[ConfigMapRef, asyncio.Lock] = {}
        self._seen: dict[str, tuple[str, int, bool]] = {}  # pod uid -> (ip, port, ready)
        self._tasks: set[asyncio.Task[None]] = set()

    async def confirmed(self, ref: ConfigMapRef, revision: str) -> bool:
        """Whether ``revision`` is the ConfigMap's current one in the API (see the docstring)."""
        if self._current_revision is None:
            return True
        lock = self._confirm_locks.setdefault(ref, asyncio.Lock())
        async with lock:
            cached = self._confirmed.get(ref)
            if cached is not None and cached[0] == revision:
                if time.monotonic() - cached[1] < CONFIRM_TTL:
                    return True
            try:
                current = await self._current_revision(ref)
            except KubeApiError as exc:
                logger.warning("cannot confirm the revision of %s; not pushing: %s", ref, exc)
                return False
            if current != revision:
                logger.info(
                    "%s is at %s in the API, not %s as this replica last saw it; not pushing",
                    ref,
                    (current or "deleted")[:19],
                    revision[:19],
                )
                self._confirmed.pop(ref, None)
                self._drifted(ref, revision)
                return False
            self._confirmed[ref] = (revision, time.monotonic())
            return True

    def pod_event(
        self, target: PodTarget | None, *, uid: str, configmaps: list[str], ready: bool = True
    ) -> None:
        """Called for each event of a subscribed pod; reconciles it when it (re)appears with an
        address, or its readiness changed (a restarted container: its sidecar may be back)."""
        if target is None:
            self._seen.pop(uid, None)
            self._deliverer.forget(uid)
            return
        followed = self._followed.get(uid)
        if followed is not None:
            followed.target = target
        address = (target.ip, target.port, ready)
        if self._seen.get(uid) == address:
            return
        self._seen[uid] = address
        self._spawn(
            self.pod_ready(target, [ConfigMapRef(target.namespace, n) for n in configmaps]),
            name=f"hotconf reconcile pod {target.namespace}/{target.name}",
        )

    def pod_gone(self, uid: str) -> None:
        self._seen.pop(uid, None)
        self._followed.pop(uid, None)  # its follow-up ends at its next probe
        self._deliverer.forget(uid)

    def _spawn(self, job: Awaitable[None], name: str) -> None:
        task = asyncio.ensure_future(job)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            logger.error("%s failed; the next sweep tries again", task.get_name(), exc_info=exc)

    # -- pods that did not answer

    def _follow(self, target: PodTarget, snapshot: ConfigSnapshot) -> None:
        """``Deliverer.on_unreachable``: follow the pod until it answers (module docstring)."""
        followed = self._followed.get(target.uid)
        if followed is not None:
            followed.refs.add(snapshot.ref)
            return
        followed = self._followed[target.uid] = _Followed(target, {snapshot.ref})
        self._spawn(
            self._catch_up(target.uid, followed),
            name=f"hotconf follow pod {target.namespace}/{target.name}",
        )

    async def _catch_up(self, uid: str, followed: _Followed) -> None:
        repair = self._repair
        delay = repair.probe_first
        deadline = time.monotonic() + repair.window
        while True:
            await asyncio.sleep(delay)
            delay = min(delay * 2, repair.probe_every)
            if self._followed.get(uid) is not followed:
                return  # the pod is gone
            if await self._deliverer.answers(followed.target, within=repair.probe_timeout):
                break
            if time.monotonic() >= deadline:
                self._followed.pop(uid, None)
                logger.info(
                    "pod %s/%s has not answered for %.0f s; the reconcile sweep takes over",
                    followed.target.namespace,
                    followed.target.name,
                    repair.window,
                )
                return
        # It answers: from here, a pod that fails again is followed anew.
        self._followed.pop(uid, None)
        for ref in sorted(followed.refs):
            await self._manager.rollout_ended(ref)  # a running rollout decides first
            outcome = await self._reconcile_one(ref, followed.target)
            if outcome is not None and outcome.verdict in (Verdict.APPLIED, Verdict.HELD):
                if self._metrics is not None:
                    self._metrics.caught_up.inc()

    # -- missed watch events

    def _drifted(self, ref: ConfigMapRef, known: str) -> None:
        """The API holds another revision of ``ref`` than ``known``: check again after the
        grace period, and repair if no event came meanwhile."""
        if self._read_configmap is None or ref in self._drifting:
            return
        self._drifting.add(ref)
        self._spawn(self._repair_drift(ref, known), name=f"hotconf drift check {ref}")

    async def _repair_drift(self, ref: ConfigMapRef, known: str) -> None:
        try:
            await asyncio.sleep(self._repair.drift_grace)
            if self._manager.known_revision(ref) != known:
                return  # an event came
            if self._paused():
                return  # the active replica rolls it out; kopf lists again on resuming
            assert self._read_configmap is not None
            try:
                body = await self._read_configmap(ref)
            except KubeApiError as exc:
                logger.warning("cannot read ConfigMap %s to repair a missed event: %s", ref, exc)
                return
            if self._manager.known_revision(ref) != known:
                return
            grace = self._repair.drift_grace
            if body is None:
                logger.warning(
                    "ConfigMap %s was deleted and no watch event said so within %.0f s; "
                    "forgetting it",
                    ref,
                    grace,
                )
                self._count_missed()
                await self._manager.configmap_deleted(ref)
                return
            seen = ConfigMapSeen.of(body)
            if seen.revision == known:
                return
            handled = seen.status is not None and seen.status.revision == seen.revision
            if handled:
                logger.info(
                    "ConfigMap %s is at %s, rolled out by another replica; adopting it",
                    ref,
                    seen.revision[:19],
                )
            else:
                message = (
                    f"changed to {seen.revision[:19]} (this operator last saw {known[:19]}) "
                    f"and no watch event brought the change within {grace:g} s; rolling it out"
                )
                logger.warning("ConfigMap %s %s", ref, message)
                self._count_missed()
                if self._reporter is not None:
                    self._reporter.event(
                        ref, seen.uid, reason="MissedChange", message=message, warning=True
                    )
            await self._manager.configmap_seen(body)
        finally:
            self._drifting.discard(ref)

    def _count_missed(self) -> None:
        if self._metrics is not None:
            self._metrics.missed_changes.inc()

    async def pod_ready(self, target: PodTarget, refs: list[ConfigMapRef]) -> None:
        for ref in refs:
            await self._reconcile_one(ref, target)

    async def _reconcile_one(self, ref: ConfigMapRef, target: PodTarget) -> PodOutcome | None:
        """Reconcile one pod of ``ref``; its outcome (None: nothing was done)."""
        plan = self._manager.plan_pod(ref, target)
        if plan is None:
            return None
        if plan.only_if_empty:  # halted: a pod that holds a config keeps it
            try:
                if await self._deliverer.held(target, plan.snapshot) is not None:
                    return None
            except PushFailed:
                return None
        if not await self.confirmed(ref, plan.revision):
            return None
        outcome = await self._deliverer.deliver(target, plan.snapshot, check_first=True)
        if outcome.verdict not in (Verdict.APPLIED, Verdict.HELD):
            logger.info(
                "pod %s/%s on %s: %s %s",
                target.namespace,
                target.name,
                ref,
                outcome.verdict,
                outcome.message,
            )
        if plan.current:
            await self._manager.pod_reconciled(ref, outcome)
        return outcome

    async def sweep(self) -> None:
        """One pass over every ConfigMap and its pods (skipping ConfigMaps mid-rollout)."""
        jobs = []
        current: list[ConfigMapRef] = []
        for ref in self._manager.refs():
            revision = self._manager.settled_revision(ref)
            if revision is None:
                continue
            # Once per ConfigMap: a stale one (paused replica) is neither pushed nor reported.
            if not await self.confirmed(ref, revision):
                continue
            current.append(ref)
            for target in self._manager.targets(ref):
                jobs.append(self._reconcile_one(ref, target))
        await asyncio.gather(*jobs)
        for ref in current:
            await self._manager.sweep_done(ref)

    async def run_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("reconcile sweep failed; next one in %s s", interval)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
