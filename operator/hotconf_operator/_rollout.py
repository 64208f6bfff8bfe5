"""Rollouts: each new revision of a ConfigMap, validated, then pushed to its subscribed pods.

``_handlers`` calls :meth:`RolloutManager.configmap_seen` for every watch event of a ConfigMap
labelled ``hotconf.dev/enabled: "true"``. The manager asks ``_decide`` what the event means
(ignore, re-check, roll out, reconcile) and acts on the answer: a new revision cancels any
rollout still running for an older one and starts a rollout task:

1. validate (``_validation``); an invalid revision is pushed nowhere, the status and a warning
   Event say why, and pods keep their last good config;
2. plan batches (``_plan``): all pods at once, or staged;
3. push batch by batch (``_delivery``), concurrently within a batch; a NACK in a staged rollout
   halts it, and the pods not reached keep their config;
4. write the status annotation and an Event (``_status``), and the revision's outcome to its
   history record (``_history_store``: a ``ControllerRevision`` per validated revision).

A reconcile is the same task, with each pod asked what it holds first and pushed to only if it
differs; a halted status of the same revision found on the ConfigMap is respected, and the last
revision every pod applied is read back from the history (after an operator restart the memory
no longer has it), for the pods that start while it stays halted.

The manager is the one owner of the per-ConfigMap state (``_state``) and of the rollout tasks.
``_reconcile`` asks it for a plan per pod (:meth:`RolloutManager.plan_pod`) and hands each
outcome back (:meth:`RolloutManager.pod_reconciled`); it never holds a state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from hotconf_operator._decide import (
    Action,
    ConfigMapSeen,
    PodPlan,
    decide,
    halts,
    plan_pod,
    settled,
)
from hotconf_operator._delivery import Deliverer
from hotconf_operator._errors import ConfigInvalid
from hotconf_operator._history import LIMIT_ANNOTATION
from hotconf_operator._history_store import HistoryStore
from hotconf_operator._index import PodTarget
from hotconf_operator._metrics import Metrics
from hotconf_operator._outcome import PodOutcome, Verdict, verdict_of_clients
from hotconf_operator._plan import plan_batches, split
from hotconf_operator._reporter import StatusReporter
from hotconf_operator._state import ConfigMapState, ConfigMapStates
from hotconf_operator._status import Phase, RolloutStatus, status_of
from hotconf_operator._validation import SchemaFetcher, validate_configmap
from hotconf_wire.protocol import ConfigMapRef, ConfigSnapshot
from hotconf_wire.trace import DISABLED, Tracer

__all__ = ["RolloutManager", "TargetsFn"]

logger = logging.getLogger("hotconf_operator.rollout")

#: The pods subscribed to a ConfigMap now (``_handlers`` reads them from kopf's index).
TargetsFn = Callable[[ConfigMapRef], list[PodTarget]]


class RolloutManager:
    """Owns every ConfigMap's state and its rollout task."""

    def __init__(
        self,
        *,
        deliverer: Deliverer,
        reporter: StatusReporter,
        metrics: Metrics,
        targets: TargetsFn,
        fetch_schema: SchemaFetcher | None = None,
        tracer: Tracer = DISABLED,
        history: HistoryStore | None = None,
    ) -> None:
        self._tracer = tracer
        self._deliverer = deliverer
        self._reporter = reporter
        self._metrics = metrics
        self._targets = targets
        self._fetch_schema = fetch_schema
        self._history = history
        #: For each ConfigMap's current rollout, what its history record needs from the event:
        #: (revision, who changed it, its history-limit annotation); not the event itself, which
        #: would keep kopf's whole body (last-applied annotation and all) alive.
        self._recorded: dict[ConfigMapRef, tuple[str, tuple[str, str], dict[str, str]]] = {}
        self._states = ConfigMapStates()
        #: The rollout (or schema check) task of each ConfigMap's current state.
        self._tasks: dict[ConfigMapRef, asyncio.Task[None]] = {}
        #: One status write (or restore) at a time per ConfigMap, in the order asked for.
        self._writing: dict[ConfigMapRef, asyncio.Lock] = {}

    def _rolling(self, ref: ConfigMapRef) -> bool:
        task = self._tasks.get(ref)
        return task is not None and not task.done()

    @property
    def busy(self) -> bool:
        """Whether any rollout is running (``_gc`` freezes the heap only between rollouts)."""
        return any(not task.done() for task in self._tasks.values())

    # -- what _reconcile asks and tells

    def targets(self, ref: ConfigMapRef) -> list[PodTarget]:
        return self._targets(ref)

    def plan_pod(self, ref: ConfigMapRef, pod: PodTarget) -> PodPlan | None:
        """What ``pod`` should get of ``ref`` now; None: leave it (see ``_decide.plan_pod``)."""
        return plan_pod(self._states.get(ref), pod, rolling=self._rolling(ref))

    def refs(self) -> list[ConfigMapRef]:
        return self._states.refs()

    async def rollout_ended(self, ref: ConfigMapRef) -> None:
        """Return once no rollout (or schema check) of ``ref`` is running."""
        task = self._tasks.get(ref)
        while task is not None and not task.done():
            await asyncio.wait([task])
            task = self._tasks.get(ref)

    def known_revision(self, ref: ConfigMapRef) -> str | None:
        """The revision of ``ref`` this replica last saw on its watch (None: unknown)."""
        state = self._states.get(ref)
        return None if state is None else state.revision

    def settled_revision(self, ref: ConfigMapRef) -> str | None:
        """The revision of ``ref`` this replica knows, if a sweep reconciles it now (no rollout
        running, a valid revision: ``_decide.settled``); else None."""
        state = self._states.get(ref)
        if state is None or not settled(state, rolling=self._rolling(ref)):
            return None
        return state.revision

    async def pod_reconciled(self, ref: ConfigMapRef, outcome: PodOutcome) -> None:
        """A reconcile outcome for one pod of ``ref``'s current revision: kept, and the status
        written unless a rollout is running (it writes its own). Another revision's is dropped."""
        state = self._states.get(ref)
        if state is None or not state.record(outcome):
            return
        if not self._rolling(ref):
            await self._write_status(state)

    async def sweep_done(self, ref: ConfigMapRef) -> None:
        """A sweep reconciled ``ref``'s pods: write its status if it is still settled."""
        state = self._states.get(ref)
        if state is not None and settled(state, rolling=self._rolling(ref)):
            await self._write_status(state)

    # -- events

    async def configmap_seen(self, body: Mapping[str, Any]) -> None:
        """A watch event (listing, added, modified) of an enabled ConfigMap."""
        event = ConfigMapSeen.of(body)
        ref = event.ref
        old = self._states.get(ref)
        decision = decide(event, old, rolling=self._rolling(ref))
        if decision.action is Action.IGNORE:
            if decision.restore_status:
                async with self._write_lock(ref):
                    await self._reporter.restore(ref, event.annotations)
            return
        if decision.action is Action.RECHECK:
            assert old is not None  # decide re-checks only a revision it knows
            old.schemas = event.schemas
            after = self._tasks.get(ref)  # a rollout (or an earlier check) still running
            self._start(event, self._recheck(old, event, after=after), what="schema check")
            return
        state = ConfigMapState(
            ref=ref,
            uid=event.uid,
            revision=event.revision,
            policy=event.policy,
            last_good=old.last_good if old is not None else None,
            schemas=event.schemas,
        )
        if self._tracer.enabled:
            self._tracer.mark("operator.event", cm=ref, rev=event.revision)
        await self._cancel(ref)
        if decision.action is Action.RECONCILE:
            self._reporter.remember(ref, event.status)
            if decision.halt is not None:
                state.halted = True
                state.halt_reason = decision.halt
        self._states.put(state)
        limit = {k: v for k, v in event.annotations.items() if k == LIMIT_ANNOTATION}
        self._recorded[ref] = (event.revision, event.changed_by, limit)
        self._start(
            event, self._rollout(state, event, check_first=decision.check_first), what="rollout"
        )

    async def configmap_deleted(self, ref: ConfigMapRef) -> None:
        self._states.pop(ref)
        await self._cancel(ref)
        self._tasks.pop(ref, None)
        self._recorded.pop(ref, None)
        self._writing.pop(ref, None)
        self._reporter.forget(ref)
        if self._history is not None:
            self._history.forget(ref)
        self._update_gauges()

    async def aclose(self) -> None:
        for ref in list(self._tasks):
            await self._cancel(ref)

    async def wait_idle(self) -> None:
        """Wait for every running rollout (tests and the benchmark use this)."""
        tasks = list(self._tasks.values())
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def _start(self, event: ConfigMapSeen, job: Coroutine[Any, Any, None], *, what: str) -> None:
        name = f"hotconf {what} {event.ref} {event.revision[:19]}"
        self._tasks[event.ref] = asyncio.create_task(job, name=name)

    async def _cancel(self, ref: ConfigMapRef) -> None:
        task = self._tasks.get(ref)
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- the rollout task

    async def _validate(self, event: ConfigMapSeen) -> None:
        """Validate the event's data with its schema annotations (ConfigInvalid)."""
        await validate_configmap(
            namespace=event.ref.namespace,
            name=event.ref.name,
            data=event.snapshot.data,
            annotations=event.annotations,
            fetch_schema=self._fetch_schema,
        )

    async def _recheck(
        self, state: ConfigMapState, event: ConfigMapSeen, *, after: asyncio.Task[None] | None
    ) -> None:
        """Validate the revision the pods run against changed schemas; warn if it fails them
        (the pods keep it: it is what they run; the next change must pass).

        ``after``: the task this check follows, left to end first (its rollout, Event and
        history record included). Awaited, not shielded: cancelling the check (a new revision)
        cancels that task too, as cancelling the rollout itself would."""
        if after is not None and not after.done():
            with contextlib.suppress(Exception):  # its own failure is its own to log
                await after
        revision = event.revision[:19]
        try:
            await self._validate(event)
        except ConfigInvalid as exc:
            logger.warning("ConfigMap %s %s fails its changed schema: %s", state.ref, revision, exc)
            self._reporter.event(
                state.ref,
                state.uid,
                reason="SchemaCheckFailed",
                message=(
                    f"the revision the pods run ({revision}) does not pass the "
                    f"changed schema; they keep it, and the next change must pass: {exc}"
                ),
                warning=True,
            )

    async def _rollout(
        self, state: ConfigMapState, event: ConfigMapSeen, *, check_first: bool
    ) -> None:
        started = time.monotonic()
        ref = state.ref
        snapshot = event.snapshot
        try:
            await self._validate(event)
        except ConfigInvalid as exc:
            self._metrics.invalid.inc()
            first = exc.problems[0]
            logger.warning("ConfigMap %s %s is invalid: %s", ref, snapshot.revision[:19], exc)
            self._reporter.event(
                ref, state.uid, reason="ValidationFailed", message=str(exc), warning=True
            )
            await self._reporter.write(
                ref,
                RolloutStatus(
                    revision=snapshot.revision,
                    phase=Phase.INVALID,
                    total=len(self._targets(ref)),
                    pending=len(self._targets(ref)),
                    message=str(first),
                ),
            )
            self._update_gauges()
            return
        state.snapshot = snapshot
        trace = self._tracer
        if trace.enabled:
            trace.mark("operator.validated", cm=ref, rev=snapshot.revision)
        if state.policy.problem:
            self._reporter.event(
                ref,
                state.uid,
                reason="RolloutPolicyIgnored",
                message=state.policy.problem,
                warning=True,
            )
        targets = self._targets(ref)
        if state.halted:
            # Restarted after a halt: only look at who holds what; push nothing. Pods that
            # start meanwhile get the last revision every pod applied, from the history.
            if state.last_good is None and self._history is not None:
                state.last_good = await self._history.last_good(
                    ref, state.uid, besides=state.revision
                )
            outcomes = await asyncio.gather(*(self._observe(t, snapshot) for t in targets))
            for outcome in outcomes:
                state.record(outcome)
            await self._write_status(state, done=True)  # halted, not "rolling"
            return
        batches = split(targets, plan_batches(len(targets), state.policy))
        if len(batches) > 1:
            await self._write_status(state)
        deliver = self._deliverer.deliver
        for batch in batches:
            if len(batch) == 1:  # no task (and no loop turn) between the event and the push
                results = [await deliver(batch[0], snapshot, check_first=check_first)]
            else:
                results = await asyncio.gather(
                    *(deliver(t, snapshot, check_first=check_first) for t in batch)
                )
            for outcome in results:
                state.record(outcome)
            if halts(state.policy, results):
                state.halted = True
                break
        status = await self._write_status(state, done=True, note=False)
        if trace.enabled:
            trace.mark("operator.status", cm=ref, rev=snapshot.revision)
        took = time.monotonic() - started
        self._metrics.rollout_seconds.labels(phase=str(status.phase)).observe(took)
        # the rollout's one log line (nothing is logged per pod on this path)
        logger.info(
            "rollout of %s %s %s: %d/%d pods applied, %d rejected, %d pending, %.0f ms",
            ref,
            snapshot.revision[:19],
            status.phase,
            status.applied,
            status.total,
            status.rejected,
            status.pending,
            took * 1e3,
        )
        if status.phase is Phase.COMPLETE:
            self._reporter.event(
                ref,
                state.uid,
                reason="RolloutComplete",
                message=f"{snapshot.revision[:19]} applied by {status.applied}/{status.total} pods",
                warning=False,
            )
        elif status.phase in (Phase.HALTED, Phase.REJECTED):
            verb = "halted" if status.phase is Phase.HALTED else "rejected"
            self._reporter.event(
                ref,
                state.uid,
                reason="RolloutHalted" if state.halted else "RolloutRejected",
                message=f"{snapshot.revision[:19]} {verb}: pod {status.pod}: {status.message}",
                warning=True,
            )
        # Last: the history is not part of what a rollout costs its pods (nor of its time).
        await self._note(state, status)

    async def _observe(self, target: PodTarget, snapshot: ConfigSnapshot) -> PodOutcome:
        try:
            entry = await self._deliverer.held(target, snapshot)
        except Exception as exc:  # any failure leaves the pod pending
            return PodOutcome(target, snapshot.revision, Verdict.PENDING, str(exc))
        if entry is not None and entry.revision == snapshot.revision:
            # The sidecar holds it; its clients say whether they took it (a NACK stays one).
            verdict, message = verdict_of_clients(entry.clients)
            return PodOutcome(target, snapshot.revision, verdict, message)
        return PodOutcome(target, snapshot.revision, Verdict.PENDING, "halted: keeps its config")

    # -- status

    async def _write_status(
        self, state: ConfigMapState, *, done: bool = False, note: bool = True
    ) -> RolloutStatus:
        """Count, keep the last good, write the status; ``note``: also the history's outcome
        (a rollout notes it itself, after its log line and Event)."""
        ref = state.ref
        # Serialised: a reconcile's write of the revision before, still in flight when a new
        # revision's rollout writes "rolling", would otherwise land last and stay.
        async with self._write_lock(ref):
            targets = self._targets(ref)
            status = status_of(state, targets, done=done or not self._rolling(ref))
            if self._states.get(ref) is not state:  # a newer revision owns the status now
                return status
            if status.phase is Phase.COMPLETE and state.converged_seconds is None:
                # Once per revision, however it got there (the rollout, a catch-up, a sweep).
                state.converged_seconds = time.monotonic() - state.seen_at
                self._metrics.convergence_seconds.observe(state.converged_seconds)
                status = status_of(state, targets, done=True)
            if status.phase is Phase.COMPLETE and state.snapshot is not None:
                # Also when the reconciler completes it: a rollout that ended incomplete (a pod
                # not reachable yet) must still become the config for pods after a later halt.
                state.last_good = state.snapshot
            self._update_gauges()
            await self._reporter.write(ref, status)
        if note:
            await self._note(state, status)
        return status

    def _write_lock(self, ref: ConfigMapRef) -> asyncio.Lock:
        """The lock every write of ``ref``'s status annotation takes, in the order asked."""
        lock = self._writing.get(ref)
        if lock is None:
            lock = self._writing[ref] = asyncio.Lock()
        return lock

    async def _note(self, state: ConfigMapState, status: RolloutStatus) -> None:
        """Write ``status`` to the history record of ``state``'s revision (``_history_store``)."""
        recorded = self._recorded.get(state.ref)
        if self._history is None or state.snapshot is None or recorded is None:
            return
        revision, who, limit = recorded
        if revision == state.revision:
            await self._history.note(
                snapshot=state.snapshot, uid=state.uid, status=status, who=who, annotations=limit
            )

    def _update_gauges(self) -> None:
        totals = dict.fromkeys(Verdict, 0)
        for state in self._states:
            status = status_of(state, self._targets(state.ref), done=True)
            totals[Verdict.APPLIED] += status.applied
            totals[Verdict.HELD] += status.held
            totals[Verdict.REJECTED] += status.rejected
            totals[Verdict.PENDING] += status.pending
        for verdict, count in totals.items():
            self._metrics.pods.labels(state=str(verdict)).set(count)
