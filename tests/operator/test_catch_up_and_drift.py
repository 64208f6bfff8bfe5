"""Repairs (``_reconcile``): a pod that missed a push, a pod that restarted, a missed watch event.

Proves, with fake sidecars and a fake API and no reconcile sweep run unless said: a pod that did
not answer a push gets the revision as soon as it answers again, counted in a metric, and the
ConfigMap's convergence (status and histogram) is timed to that moment; a pod that
is gone is no longer probed; a pod whose readiness changes is reconciled at once; a change the
API holds but no watch event brought is rolled out once the grace period has passed, with a
``MissedChange`` Warning Event naming both revisions and a metric; a change another replica
already rolled out is adopted without being counted as missed; a deletion no event brought is
forgotten; a replica that kopf peering paused (as its log records say) repairs nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from operator_fakes import FAST_REPAIR, FakeApi, OperatorParts, configmap, operator_parts, pod

from hotconf_operator._decide import snapshot_of
from hotconf_operator._peering import PEERING_LOGGER, PauseWatcher
from hotconf_operator._status import Phase, RolloutStatus
from hotconf_wire.protocol import ConfigMapRef

REF = ConfigMapRef("default", "app")
V1 = {"app.yaml": "port: 1"}
V2 = {"app.yaml": "port: 2"}


def revision(data: dict[str, str]) -> str:
    return snapshot_of(configmap(data)).revision


def counter(parts: OperatorParts, name: str) -> float:
    return parts.metrics.registry.get_sample_value(f"hotconf_operator_{name}_total") or 0.0


async def eventually(what: str, check: Callable[[], bool], *, within: float = 2.0) -> None:
    """Let the reconciler's own tasks run until ``check`` holds (no sweep is run here)."""
    for _ in range(int(within / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not within {within} s: {what}")


async def test_a_pod_that_missed_a_push_gets_it_as_soon_as_it_answers_again() -> None:
    parts = operator_parts([pod(0), pod(1)])
    parts.sidecars.script(pod(1), "unreachable")
    await parts.manager.configmap_seen(configmap(V1))
    await parts.manager.wait_idle()
    assert (parts.status.phase, parts.status.pending) == (Phase.INCOMPLETE, 1)
    await eventually("probes of the unreachable pod", lambda: len(parts.sidecars.probes) >= 3)
    assert parts.sidecars.revision_of(pod(1), REF) is None

    parts.sidecars.script(pod(1), "ack")  # back
    await eventually(
        "the pod caught up", lambda: parts.sidecars.revision_of(pod(1), REF) == revision(V1)
    )
    await eventually("complete status", lambda: parts.status.phase is Phase.COMPLETE)
    assert counter(parts, "caught_up_pods") == 1
    # Converged once, when the last pod caught up: in the status and the histogram.
    assert parts.status.converged_seconds is not None and parts.status.converged_seconds > 0
    count = "hotconf_operator_convergence_duration_seconds_count"
    assert parts.metrics.registry.get_sample_value(count) == 1
    probes = len(parts.sidecars.probes)
    await asyncio.sleep(FAST_REPAIR.probe_every * 5)
    assert len(parts.sidecars.probes) == probes  # followed no more once it answered
    await parts.reconciler.aclose()


async def test_a_pod_that_is_gone_is_no_longer_probed() -> None:
    parts = operator_parts([pod(0)])
    parts.sidecars.script(pod(0), "unreachable")
    await parts.manager.configmap_seen(configmap(V1))
    await parts.manager.wait_idle()
    await eventually("a probe", lambda: len(parts.sidecars.probes) >= 1)
    parts.reconciler.pod_gone(pod(0).uid)
    await asyncio.sleep(FAST_REPAIR.probe_every * 2)
    probes = len(parts.sidecars.probes)
    await asyncio.sleep(FAST_REPAIR.probe_every * 5)
    assert len(parts.sidecars.probes) == probes
    await parts.reconciler.aclose()


async def test_a_pod_whose_readiness_changes_is_reconciled_at_once() -> None:
    parts = operator_parts([pod(0)])
    await parts.manager.configmap_seen(configmap(V1))
    await parts.manager.wait_idle()
    reads = len(parts.sidecars.reads)
    parts.reconciler.pod_event(pod(0), uid=pod(0).uid, configmaps=["app"], ready=True)
    await eventually("the first reconcile", lambda: len(parts.sidecars.reads) > reads)
    parts.sidecars.held.clear()  # its sidecar restarted with an empty state directory
    parts.reconciler.pod_event(pod(0), uid=pod(0).uid, configmaps=["app"], ready=False)
    parts.reconciler.pod_event(pod(0), uid=pod(0).uid, configmaps=["app"], ready=True)
    await eventually(
        "the revision again", lambda: parts.sidecars.revision_of(pod(0), REF) == revision(V1)
    )
    await parts.reconciler.aclose()


async def test_a_change_no_event_brought_is_rolled_out_after_the_grace_period() -> None:
    api = FakeApi()
    parts = operator_parts([pod(0), pod(1)], api=api)
    await parts.manager.configmap_seen(api.put(configmap(V1)))
    await parts.manager.wait_idle()
    api.put(configmap(V2))  # the watch event of this change is dropped
    await parts.reconciler.sweep()
    assert parts.sidecars.revision_of(pod(0), REF) == revision(V1)  # not at once: the grace
    await eventually(
        "the missed change on every pod",
        lambda: (
            [parts.sidecars.revision_of(p, REF) for p in (pod(0), pod(1))] == [revision(V2)] * 2
        ),
    )
    await parts.manager.wait_idle()
    assert (parts.status.revision, parts.status.phase) == (revision(V2), Phase.COMPLETE)
    assert counter(parts, "missed_changes") == 1
    assert ("MissedChange", True) in parts.reporter.events
    message = parts.reporter.messages[parts.reporter.reasons.index("MissedChange")]
    assert revision(V2)[:19] in message and revision(V1)[:19] in message
    # The event arriving late now changes nothing.
    pushes = len(parts.sidecars.pushes)
    await parts.manager.configmap_seen(configmap(V2))
    await parts.manager.wait_idle()
    assert len(parts.sidecars.pushes) == pushes
    await parts.reconciler.aclose()


async def test_a_change_another_replica_rolled_out_is_adopted_not_counted() -> None:
    api = FakeApi()
    parts = operator_parts([pod(0)], api=api)
    await parts.manager.configmap_seen(api.put(configmap(V1)))
    await parts.manager.wait_idle()
    # While this replica was paused, another one rolled V2 out and wrote its status.
    status = RolloutStatus(revision(V2), Phase.COMPLETE, applied=1, total=1).to_annotation()
    api.put(configmap(V2, annotations={"hotconf.dev/status": status}))
    parts.sidecars.hold(pod(0), REF, revision(V2))
    pushes = len(parts.sidecars.pushes)
    await parts.reconciler.sweep()
    await eventually("V2 adopted", lambda: parts.manager.known_revision(REF) == revision(V2))
    await parts.manager.wait_idle()
    assert len(parts.sidecars.pushes) == pushes
    assert counter(parts, "missed_changes") == 0
    assert "MissedChange" not in parts.reporter.reasons
    await parts.reconciler.aclose()


async def test_a_deletion_no_event_brought_is_forgotten() -> None:
    api = FakeApi()
    parts = operator_parts([pod(0)], api=api)
    await parts.manager.configmap_seen(api.put(configmap(V1)))
    await parts.manager.wait_idle()
    del api.configmaps[REF]
    await parts.reconciler.sweep()
    await eventually("forgotten", lambda: parts.manager.known_revision(REF) is None)
    assert counter(parts, "missed_changes") == 1
    await parts.reconciler.aclose()


async def test_a_paused_replica_repairs_no_missed_change() -> None:
    watcher = PauseWatcher()
    watcher.install()
    peering = logging.getLogger(PEERING_LOGGER)
    try:
        api = FakeApi()
        parts = operator_parts([pod(0)], api=api, paused=lambda: watcher.paused)
        await parts.manager.configmap_seen(api.put(configmap(V1)))
        await parts.manager.wait_idle()
        peering.info("Pausing operations in favour of [Peer(identity=other, priority=9)].")
        api.put(configmap(V2))
        await parts.reconciler.sweep()
        await asyncio.sleep(FAST_REPAIR.drift_grace * 4)
        assert parts.sidecars.revision_of(pod(0), REF) == revision(V1)
        assert parts.manager.known_revision(REF) == revision(V1)
        peering.info("Resuming operations after the pause. Conflicting operators ... are gone.")
        await parts.reconciler.sweep()
        await eventually(
            "repaired once resumed", lambda: parts.sidecars.revision_of(pod(0), REF) == revision(V2)
        )
        await parts.reconciler.aclose()
    finally:
        peering.removeHandler(watcher)
