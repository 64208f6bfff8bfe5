"""Reconciliation (``_reconcile.Reconciler``) through the manager's plans, with fake sidecars.

Proves: a pod that becomes ready gets the current revision and counts in the status; while a
rollout is halted a new pod that holds nothing gets the last good revision and one that holds a
config keeps it; a revision the API no longer has is not pushed (a paused replica's stale
knowledge); a sweep pushes nothing to healthy pods, brings back a restarted sidecar and a pod
that was unreachable, and writes the status it reached; a pod seen again at the same address is
not reconciled twice.
"""

from __future__ import annotations

import asyncio

from operator_fakes import OperatorParts, configmap, operator_parts, pod

from hotconf_operator._decide import snapshot_of
from hotconf_operator._status import Phase
from hotconf_wire.protocol import ConfigMapRef

REF = ConfigMapRef("default", "app")
V1 = {"app.yaml": "port: 1"}
V2 = {"app.yaml": "port: 2"}
STAGED = {"hotconf.dev/rollout": "staged", "hotconf.dev/rollout-first": "1",
          "hotconf.dev/rollout-batch": "1"}  # fmt: skip


def revision(data: dict[str, str]) -> str:
    return snapshot_of(configmap(data)).revision


async def rolled_out(parts: OperatorParts, data: dict[str, str], **annotations: str) -> None:
    await parts.manager.configmap_seen(configmap(data, annotations=annotations))
    await parts.manager.wait_idle()


async def test_a_pod_that_becomes_ready_gets_the_current_revision() -> None:
    parts = operator_parts([pod(0)])
    await rolled_out(parts, V1)
    parts.pods.append(pod(1))  # indexed once Running with an IP
    await parts.reconciler.pod_ready(pod(1), [REF])
    assert parts.sidecars.revision_of(pod(1), REF) == revision(V1)
    assert (parts.status.phase, parts.status.applied, parts.status.total) == (Phase.COMPLETE, 2, 2)


async def test_while_halted_a_new_pod_gets_the_last_good_revision() -> None:
    parts = operator_parts([pod(0), pod(1)])
    await rolled_out(parts, V1, **STAGED)
    parts.sidecars.script(pod(0), "nack")
    await rolled_out(parts, V2, **STAGED)
    assert parts.status.phase is Phase.HALTED
    parts.pods.extend([pod(2), pod(3)])
    parts.sidecars.hold(pod(3), REF, "sha256:" + "f" * 64)  # holds a config of its own
    await parts.reconciler.pod_ready(pod(2), [REF])
    await parts.reconciler.pod_ready(pod(3), [REF])
    assert parts.sidecars.revision_of(pod(2), REF) == revision(V1)  # last good, not V2
    assert parts.sidecars.revision_of(pod(3), REF) == "sha256:" + "f" * 64
    assert parts.sidecars.revision_of(pod(1), REF) == revision(V1)  # not reached: kept it


async def test_a_revision_the_api_no_longer_has_is_not_pushed() -> None:
    async def current_revision(ref: ConfigMapRef) -> str | None:
        return revision(V2)  # another replica rolled V2 out while this one was paused

    parts = operator_parts([pod(0)], current_revision=current_revision)
    await rolled_out(parts, V1)
    parts.pods.append(pod(1))
    await parts.reconciler.pod_ready(pod(1), [REF])
    assert parts.sidecars.revision_of(pod(1), REF) is None
    await parts.reconciler.sweep()
    assert [name for name, _ in parts.sidecars.pushes] == ["web-0"]


async def test_a_sweep_pushes_only_where_a_pod_lost_or_missed_the_revision() -> None:
    parts = operator_parts([pod(0), pod(1), pod(2)])
    parts.sidecars.script(pod(2), "unreachable")
    await rolled_out(parts, V1)
    assert (parts.status.phase, parts.status.pending) == (Phase.INCOMPLETE, 1)
    pushed = len(parts.sidecars.pushes)
    await parts.reconciler.sweep()
    assert len(parts.sidecars.pushes) == pushed  # healthy pods: a state read, no push
    del parts.sidecars.held[pod(1).uid]  # its sidecar restarted with nothing
    parts.sidecars.script(pod(2), "ack")  # reachable again
    await parts.reconciler.sweep()
    assert sorted(parts.sidecars.pushes[pushed:]) == [
        ("web-1", revision(V1)), ("web-2", revision(V1))
    ]  # fmt: skip
    assert (parts.status.phase, parts.status.applied) == (Phase.COMPLETE, 3)


async def test_a_pod_seen_again_at_the_same_address_is_reconciled_once() -> None:
    parts = operator_parts([pod(0)])
    await rolled_out(parts, V1)
    reads = len(parts.sidecars.reads)
    for _ in range(3):
        parts.reconciler.pod_event(pod(0), uid=pod(0).uid, configmaps=["app"])
    for _ in range(10):  # the fakes never block: a few loop turns finish the reconcile
        await asyncio.sleep(0)
    assert len(parts.sidecars.reads) == reads + 1
    await parts.reconciler.aclose()
