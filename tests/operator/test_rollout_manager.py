"""The rollout manager (``_rollout.RolloutManager``) acting on its decisions, with fake sidecars.

Proves: a new revision rolls out to every subscribed pod and the status says complete; the same
revision again pushes nothing; a revision that fails validation is pushed nowhere and its status
says invalid; a staged rollout halts at the first NACK and the pods not reached keep their
config; a halted status found on the ConfigMap (an operator restart) is kept: nothing is pushed;
an unreachable pod is pending and the rollout incomplete; a schema changed mid-rollout is checked
once the rollout (its Event included) has ended, without cutting it short; a status write still
in flight lands before the next revision's, which stays.
"""

from __future__ import annotations

import asyncio

from operator_fakes import configmap, operator_parts, pod

from hotconf_operator._decide import snapshot_of
from hotconf_operator._outcome import PodOutcome, Verdict
from hotconf_operator._status import STATUS_ANNOTATION, Phase, RolloutStatus
from hotconf_wire.protocol import ConfigMapRef

REF = ConfigMapRef("default", "app")
STAGED = {"hotconf.dev/rollout": "staged", "hotconf.dev/rollout-first": "1",
          "hotconf.dev/rollout-batch": "1"}  # fmt: skip


def counts(status: RolloutStatus) -> tuple[str, int, int, int, int]:
    return (status.phase, status.applied, status.rejected, status.pending, status.total)


def revision(data: dict[str, str]) -> str:
    return snapshot_of(configmap(data)).revision


async def test_a_new_revision_rolls_out_to_every_pod() -> None:
    parts = operator_parts([pod(0), pod(1)])
    await parts.manager.configmap_seen(configmap({"app.yaml": "port: 1"}))
    await parts.manager.wait_idle()
    first = revision({"app.yaml": "port: 1"})
    assert counts(parts.status) == (Phase.COMPLETE, 2, 0, 0, 2)
    # The first sight reconciles: each pod is asked first.
    assert sorted(parts.sidecars.reads) == ["web-0", "web-1"]
    await parts.manager.configmap_seen(configmap({"app.yaml": "port: 2"}))
    await parts.manager.wait_idle()
    second = revision({"app.yaml": "port: 2"})
    assert sorted(parts.sidecars.pushes) == [
        ("web-0", first), ("web-0", second), ("web-1", first), ("web-1", second)
    ]  # fmt: skip
    assert sorted(parts.sidecars.reads) == ["web-0", "web-1"]  # a new revision: pushed at once
    assert (parts.status.revision, parts.status.phase) == (second, Phase.COMPLETE)
    assert parts.reporter.reasons == ["RolloutComplete", "RolloutComplete"]
    assert not parts.manager.busy


async def test_the_same_revision_again_pushes_nothing() -> None:
    parts = operator_parts([pod(0)])
    await parts.manager.configmap_seen(configmap({"app.yaml": "port: 1"}))
    await parts.manager.wait_idle()
    written = len(parts.reporter.written)
    relabelled = configmap({"app.yaml": "port: 1"}, annotations={"team": "payments"})
    await parts.manager.configmap_seen(relabelled)
    await parts.manager.wait_idle()
    assert len(parts.sidecars.pushes) == 1
    assert len(parts.reporter.written) == written
    assert parts.reporter.restored == 1  # the lost status (none on this body) is written again


async def test_an_invalid_revision_is_pushed_nowhere() -> None:
    parts = operator_parts([pod(0), pod(1)])
    await parts.manager.configmap_seen(configmap({"app.yaml": "port: [unclosed"}))
    await parts.manager.wait_idle()
    assert parts.sidecars.pushes == [] and parts.sidecars.reads == []
    assert counts(parts.status) == (Phase.INVALID, 0, 0, 2, 2)
    assert "app.yaml" in parts.status.message
    assert parts.reporter.reasons == ["ValidationFailed"]


async def test_a_staged_rollout_halts_at_the_first_nack() -> None:
    parts = operator_parts([pod(0), pod(1), pod(2)])
    await parts.manager.configmap_seen(configmap({"app.yaml": "port: 1"}, annotations=STAGED))
    await parts.manager.wait_idle()
    parts.sidecars.script(pod(1), "nack")
    await parts.manager.configmap_seen(configmap({"app.yaml": "port: 2"}, annotations=STAGED))
    await parts.manager.wait_idle()
    second = revision({"app.yaml": "port: 2"})
    assert [p for p in parts.sidecars.pushes if p[1] == second] == [
        ("web-0", second), ("web-1", second)
    ]  # fmt: skip
    assert parts.sidecars.revision_of(pod(2), REF) == revision({"app.yaml": "port: 1"})
    assert counts(parts.status) == (Phase.HALTED, 1, 1, 1, 3)
    assert (parts.status.pod, parts.status.message) == ("web-1", "worker (pid 7): bad port")
    assert parts.reporter.reasons[-1] == "RolloutHalted"


async def test_a_halt_found_on_the_configmap_is_kept_after_a_restart() -> None:
    parts = operator_parts([pod(0), pod(1)])
    data = {"app.yaml": "port: 2"}
    halted = RolloutStatus(revision(data), Phase.HALTED, 0, 1, 1, 2, "bad port", "web-0")
    body = configmap(data, annotations={**STAGED, STATUS_ANNOTATION: halted.to_annotation()})
    await parts.manager.configmap_seen(body)
    await parts.manager.wait_idle()
    assert parts.sidecars.pushes == []  # only looked
    assert sorted(parts.sidecars.reads) == ["web-0", "web-1"]
    last = parts.reporter.last(REF)
    assert last is not None and last.phase is Phase.HALTED


async def test_an_unreachable_pod_is_pending() -> None:
    parts = operator_parts([pod(0), pod(1)])
    parts.sidecars.script(pod(1), "unreachable")
    await parts.manager.configmap_seen(configmap({"app.yaml": "port: 1"}))
    await parts.manager.wait_idle()
    assert counts(parts.status) == (Phase.INCOMPLETE, 1, 0, 1, 2)
    assert parts.reporter.reasons == []  # neither complete nor rejected: a sweep retries it


async def test_a_schema_changed_mid_rollout_is_checked_once_the_rollout_ends() -> None:
    parts = operator_parts([pod(0), pod(1)])
    data = {"app.yaml": "port: 1"}
    await parts.manager.configmap_seen(configmap(data))
    await parts.manager.wait_idle()
    parts.sidecars.gate = asyncio.Event()
    data = {"app.yaml": "port: 2"}
    await parts.manager.configmap_seen(configmap(data))
    for _ in range(100):  # a few loop turns: validated, pushed, the answers held back
        if len(parts.sidecars.pushes) == 4:
            break
        await asyncio.sleep(0)
    assert len(parts.sidecars.pushes) == 4
    strict = {"hotconf.dev/schema.app.yaml": '{"type": "object", "required": ["host"]}'}
    await parts.manager.configmap_seen(configmap(data, annotations=strict))
    parts.sidecars.gate.set()
    await parts.manager.wait_idle()
    # The rollout was not cut short nor validated again: both pods took it, then the warning.
    assert len(parts.sidecars.pushes) == 4
    assert counts(parts.status) == (Phase.COMPLETE, 2, 0, 0, 2)
    assert parts.reporter.reasons == ["RolloutComplete", "RolloutComplete", "SchemaCheckFailed"]
    assert "missing required property 'host'" in parts.reporter.messages[-1]


async def test_a_status_write_in_flight_lands_before_the_next_revisions() -> None:
    parts = operator_parts([pod(0), pod(1)])
    await parts.manager.configmap_seen(configmap({"app.yaml": "port: 1"}))
    await parts.manager.wait_idle()
    first, second = revision({"app.yaml": "port: 1"}), revision({"app.yaml": "port: 2"})
    # A reconcile of revision 1 writes the status; its PATCH is slow to land.
    parts.reporter.hold_next = landed = asyncio.Event()
    outcome = PodOutcome(pod(0), first, Verdict.HELD, "no clients connected")
    reconciled = asyncio.create_task(parts.manager.pod_reconciled(REF, outcome))
    await asyncio.sleep(0)
    await parts.manager.configmap_seen(configmap({"app.yaml": "port: 2"}))
    for _ in range(20):  # revision 2's rollout runs meanwhile, as far as it can
        await asyncio.sleep(0)
    landed.set()
    await reconciled
    await parts.manager.wait_idle()
    assert [s.revision for s in parts.reporter.written][-2:] == [first, second]
    assert (parts.status.revision, parts.status.phase) == (second, Phase.COMPLETE)
