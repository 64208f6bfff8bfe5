"""Rollouts: each new revision of a ConfigMap, validated, then pushed to its subscribed pods.

``_handlers`` calls :meth:`RolloutManager.configmap_seen` for every watch event of a ConfigMap
labelled ``hotconf.dev/enabled: "true"``. The content revision
(:func:`hotconf_wire.protocol.compute_revision` over ``data`` and ``binaryData``) decides: the same
revision as before (a change of annotations, our own status included) does nothing; a new one
cancels any rollout still running for an older revision and starts a new rollout task:

1. validate (``_validation``); an invalid revision is pushed nowhere, the status and a warning
   Event say why, and pods keep their last good config;
2. plan batches (``_plan``): all pods at once, or staged;
3. push batch by batch (``_delivery``), concurrently within a batch; a NACK in a staged rollout
   halts it, and the pods not reached keep their config;
4. write the status annotation and an Event (``_status``).

The first time the operator sees a ConfigMap (start-up, or after a restart), and whenever the
status on the ConfigMap already names the new revision (another replica rolled it out while
this one was paused), it reconciles instead of pushing blindly: each pod is asked what it holds
and pushed to only if it differs. A halted status for the same revision is respected.
``_reconcile`` uses the per-ConfigMap state (``_state``) kept here to bring late pods up to date.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from hotconf_operator._delivery import Deliverer
from hotconf_operator._errors import ConfigInvalid
from hotconf_operator._index import PodTarget
from hotconf_operator._metrics import Metrics
from hotconf_operator._outcome import PodOutcome, Verdict, verdict_of_clients
from hotconf_operator._plan import RolloutPolicy, plan_batches, split
from hotconf_operator._state import ConfigMapState
from hotconf_operator._status import (
    Phase,
    RolloutStatus,
    StatusReporter,
    parse_status,
    status_of,
)
from hotconf_operator._validation import (
    SCHEMA_ANNOTATION_PREFIX,
    SchemaFetcher,
    validate_configmap,
)
from hotconf_wire.protocol import ConfigMapRef, ConfigSnapshot, compute_revision

__all__ = ["RolloutManager", "snapshot_of"]

logger = logging.getLogger("hotconf_operator.rollout")

TargetsFn = Callable[[ConfigMapRef], list[PodTarget]]


def snapshot_of(body: Mapping[str, Any]) -> ConfigSnapshot:
    """The ConfigMap's content as a snapshot, with its content revision."""
    meta = body.get("metadata") or {}
    data = {str(k): str(v) for k, v in (body.get("data") or {}).items()}
    binary = {str(k): base64.b64decode(v) for k, v in (body.get("binaryData") or {}).items()}
    return ConfigSnapshot(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        revision=compute_revision(data, binary),
        data=data,
        binary_data=binary,
    )


def schema_annotations(annotations: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The ConfigMap's ``hotconf.dev/schema.<key>`` annotations, in a comparable form."""
    return tuple(
        sorted(
            (k, str(v)) for k, v in annotations.items() if k.startswith(SCHEMA_ANNOTATION_PREFIX)
        )
    )


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
    ) -> None:
        self._deliverer = deliverer
        self._reporter = reporter
        self._metrics = metrics
        self._targets = targets
        self._fetch_schema = fetch_schema
        self._states: dict[ConfigMapRef, ConfigMapState] = {}

    # -- queries used by _reconcile

    def state(self, ref: ConfigMapRef) -> ConfigMapState | None:
        return self._states.get(ref)

    def refs(self) -> list[ConfigMapRef]:
        return sorted(self._states)

    def targets(self, ref: ConfigMapRef) -> list[PodTarget]:
        return self._targets(ref)

    @property
    def busy(self) -> bool:
        """Whether any rollout is running (``_gc`` freezes the heap only between rollouts)."""
        return any(state.rolling for state in self._states.values())

    # -- events

    async def configmap_seen(self, body: Mapping[str, Any]) -> None:
        """A watch event (listing, added, modified) of an enabled ConfigMap."""
        snapshot = snapshot_of(body)
        ref = snapshot.ref
        meta = body.get("metadata") or {}
        annotations: Mapping[str, str] = meta.get("annotations") or {}
        old = self._states.get(ref)
        schemas = schema_annotations(annotations)
        revalidate = False
        if old is not None and old.revision == snapshot.revision:
            if old.schemas == schemas:
                # Annotations only (our status included), or a re-list: nothing to push. A
                # status annotation that someone removed (or replaced with another revision's)
                # is written again; a rollout in progress writes its own.
                if not old.rolling:
                    await self._reporter.restore(ref, annotations)
                return
            # A schema annotation changed, the data did not. A revision the pods run (or are
            # getting) is only checked and warned about; one that was invalid may pass now,
            # and then rolls out to the pods that do not hold it yet.
            if old.snapshot is not None and not old.rolling:
                old.schemas = schemas
                old.task = asyncio.create_task(
                    self._recheck(old, snapshot, annotations),
                    name=f"hotconf schema check {ref} {snapshot.revision[:19]}",
                )
                return
            revalidate = True
        previous = parse_status(annotations)
        # Someone already rolled this revision out: another replica while this one was paused
        # (kopf re-lists on resume), or this process before a restart. Reconcile, do not push.
        handled = previous is not None and previous.revision == snapshot.revision
        first_sight = old is None or handled or revalidate
        state = ConfigMapState(
            ref=ref,
            uid=str(meta.get("uid", "")),
            revision=snapshot.revision,
            policy=RolloutPolicy.from_annotations(annotations),
            last_good=old.last_good if old is not None else None,
            outcomes={},
            schemas=schemas,
        )
        if old is not None:
            await self._cancel(old)
        if first_sight:
            self._reporter.remember(ref, previous)
            if previous is not None and handled and previous.phase is Phase.HALTED:
                state.halted = True
                state.halt_reason = (previous.pod, previous.message)
        self._states[ref] = state
        state.task = asyncio.create_task(
            self._rollout(state, snapshot, annotations, check_first=first_sight),
            name=f"hotconf rollout {ref} {snapshot.revision[:19]}",
        )

    async def configmap_deleted(self, ref: ConfigMapRef) -> None:
        state = self._states.pop(ref, None)
        if state is not None:
            await self._cancel(state)
        self._reporter.forget(ref)
        self._update_gauges()

    async def aclose(self) -> None:
        for state in list(self._states.values()):
            await self._cancel(state)

    async def wait_idle(self) -> None:
        """Wait for every running rollout (tests and the benchmark use this)."""
        tasks = [s.task for s in self._states.values() if s.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    @staticmethod
    async def _cancel(state: ConfigMapState) -> None:
        task = state.task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- the rollout task

    async def _validate(
        self, ref: ConfigMapRef, snapshot: ConfigSnapshot, annotations: Mapping[str, str]
    ) -> None:
        """Validate ``snapshot``'s data with the ConfigMap's schema annotations (ConfigInvalid)."""
        await validate_configmap(
            namespace=ref.namespace,
            name=ref.name,
            data=snapshot.data,
            annotations=annotations,
            fetch_schema=self._fetch_schema,
        )

    async def _recheck(
        self, state: ConfigMapState, snapshot: ConfigSnapshot, annotations: Mapping[str, str]
    ) -> None:
        """Validate the revision the pods run against changed schemas; warn if it fails them
        (the pods keep it: it is what they run; the next change must pass)."""
        ref = state.ref
        try:
            await self._validate(ref, snapshot, annotations)
        except ConfigInvalid as exc:
            logger.warning(
                "ConfigMap %s %s fails its changed schema: %s", ref, snapshot.revision[:19], exc
            )
            self._reporter.event(
                ref,
                state.uid,
                reason="SchemaCheckFailed",
                message=(
                    f"the revision the pods run ({snapshot.revision[:19]}) does not pass the "
                    f"changed schema; they keep it, and the next change must pass: {exc}"
                ),
                warning=True,
            )

    async def _rollout(
        self,
        state: ConfigMapState,
        snapshot: ConfigSnapshot,
        annotations: Mapping[str, str],
        *,
        check_first: bool,
    ) -> None:
        started = time.monotonic()
        ref = state.ref
        try:
            await self._validate(ref, snapshot, annotations)
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
            # Restarted after a halt: only look at who holds what; push nothing.
            outcomes = await asyncio.gather(*(self._observe(t, snapshot) for t in targets))
            for outcome in outcomes:
                state.outcomes[outcome.pod.uid] = outcome
            await self.write_status(state, done=True)  # halted, not "rolling"
            return
        batches = split(targets, plan_batches(len(targets), state.policy))
        if len(batches) > 1:
            await self.write_status(state)
        deliver = self._deliverer.deliver
        for batch in batches:
            if len(batch) == 1:  # no task (and no loop turn) between the event and the push
                results = [await deliver(batch[0], snapshot, check_first=check_first)]
            else:
                results = await asyncio.gather(
                    *(deliver(t, snapshot, check_first=check_first) for t in batch)
                )
            for outcome in results:
                state.outcomes[outcome.pod.uid] = outcome
            if state.policy.staged and any(o.verdict is Verdict.REJECTED for o in results):
                state.halted = True
                break
        status = await self.write_status(state, done=True)
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
            state.last_good = snapshot
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

    async def write_status(self, state: ConfigMapState, *, done: bool = False) -> RolloutStatus:
        status = status_of(state, self._targets(state.ref), done=done or not state.rolling)
        if status.phase is Phase.COMPLETE and state.snapshot is not None:
            # Also when the reconciler completes it: a rollout that ended incomplete (a pod
            # not reachable yet) must still become the config for pods after a later halt.
            state.last_good = state.snapshot
        self._update_gauges()
        await self._reporter.write(state.ref, status)
        return status

    def record(self, ref: ConfigMapRef, outcome: PodOutcome) -> ConfigMapState | None:
        """A reconcile outcome for one pod; the caller writes the status afterwards."""
        state = self._states.get(ref)
        if state is None or outcome.revision != state.revision:
            return None
        state.outcomes[outcome.pod.uid] = outcome
        return state

    def _update_gauges(self) -> None:
        totals = {Verdict.APPLIED: 0, Verdict.REJECTED: 0, Verdict.PENDING: 0}
        for state in self._states.values():
            status = status_of(state, self._targets(state.ref), done=True)
            totals[Verdict.APPLIED] += status.applied
            totals[Verdict.REJECTED] += status.rejected
            totals[Verdict.PENDING] += status.pending
        for verdict, count in totals.items():
            self._metrics.pods.labels(state=str(verdict)).set(count)
