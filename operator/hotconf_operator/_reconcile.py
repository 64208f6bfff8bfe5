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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from hotconf_operator._delivery import Deliverer
from hotconf_operator._errors import KubeApiError, PushFailed
from hotconf_operator._index import PodTarget
from hotconf_operator._outcome import Verdict
from hotconf_operator._rollout import RolloutManager
from hotconf_wire.protocol import ConfigMapRef

__all__ = ["CONFIRM_TTL", "CurrentRevisionFn", "Reconciler"]

logger = logging.getLogger("hotconf_operator.reconcile")

#: The ConfigMap's revision as the API has it now (None: deleted); raises KubeApiError.
CurrentRevisionFn = Callable[[ConfigMapRef], Awaitable[str | None]]
#: Seconds a confirmed revision is trusted: a burst of new pods costs one GET per ConfigMap.
CONFIRM_TTL = 1.0


class Reconciler:
    """Brings individual pods up to date; never touches a ConfigMap mid-rollout."""

    def __init__(
        self,
        manager: RolloutManager,
        *,
        deliverer: Deliverer,
        current_revision: CurrentRevisionFn | None = None,
    ) -> None:
        self._manager = manager
        self._deliverer = deliverer
        self._current_revision = current_revision
        self._confirmed: dict[ConfigMapRef, tuple[str, float]] = {}  # ref -> (revision, when)
        self._confirm_locks: dict[ConfigMapRef, asyncio.Lock] = {}
        self._seen: dict[str, tuple[str, int]] = {}  # pod uid -> (ip, port) last reconciled
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
                return False
            self._confirmed[ref] = (revision, time.monotonic())
            return True

    def pod_event(self, target: PodTarget | None, *, uid: str, configmaps: list[str]) -> None:
        """Called for each event of a subscribed pod; reconciles it when it (re)appears ready."""
        if target is None:
            self._seen.pop(uid, None)
            self._deliverer.forget(uid)
            return
        address = (target.ip, target.port)
        if self._seen.get(uid) == address:
            return
        self._seen[uid] = address
        task = asyncio.create_task(
            self.pod_ready(target, [ConfigMapRef(target.namespace, n) for n in configmaps]),
            name=f"hotconf reconcile pod {target.namespace}/{target.name}",
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def pod_gone(self, uid: str) -> None:
        self._seen.pop(uid, None)
        self._deliverer.forget(uid)

    async def pod_ready(self, target: PodTarget, refs: list[ConfigMapRef]) -> None:
        for ref in refs:
            await self._reconcile_one(ref, target)

    async def _reconcile_one(self, ref: ConfigMapRef, target: PodTarget) -> None:
        plan = self._manager.plan_pod(ref, target)
        if plan is None:
            return
        if plan.only_if_empty:  # halted: a pod that holds a config keeps it
            try:
                if await self._deliverer.held(target, plan.snapshot) is not None:
                    return
            except PushFailed:
                return
        if not await self.confirmed(ref, plan.revision):
            return
        outcome = await self._deliverer.deliver(target, plan.snapshot, check_first=True)
        if outcome.verdict is not Verdict.APPLIED:
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
