"""One pod, one revision (``_delivery.Deliverer``), against fake sidecars.

Proves: a push every client ACKs is applied (also with no client connected), a NACK rejects with
the client's reason, an unreachable pod is pending; checking first pushes nothing to a pod that
holds the revision and takes its clients' verdicts from the state read; a stale or replayed
refusal leads to a state read (once), any other refusal rejects; each push is counted by outcome,
an unchanged answer as ``unchanged``.
"""

from __future__ import annotations

import pytest
from operator_fakes import FakeSidecars, Script, pod

from hotconf_operator._delivery import Deliverer
from hotconf_operator._metrics import Metrics
from hotconf_operator._outcome import NO_APPLICATION, Verdict
from hotconf_operator._signing import Signer
from hotconf_wire.protocol import ConfigSnapshot

SNAPSHOT = ConfigSnapshot("default", "app", "sha256:" + "2" * 64, {"app.yaml": "port: 8080"})
OLDER = "sha256:" + "1" * 64
POD = pod(0)


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer.generate()


@pytest.fixture
def sidecars() -> FakeSidecars:
    return FakeSidecars()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def deliverer(sidecars: FakeSidecars, signer: Signer, metrics: Metrics) -> Deliverer:
    return Deliverer(pusher=sidecars, signer=signer, metrics=metrics)


def pushes(metrics: Metrics, outcome: str) -> float:
    value = metrics.registry.get_sample_value("hotconf_operator_pushes_total", {"outcome": outcome})
    return value or 0.0


@pytest.mark.parametrize(
    ("script", "verdict", "message", "counted"),
    [
        ("ack", Verdict.APPLIED, "", "applied"),
        ("no-clients", Verdict.HELD, NO_APPLICATION, "held"),
        ("nack", Verdict.REJECTED, "worker (pid 7): bad port", "rejected"),
        ("bad_signature", Verdict.REJECTED, "sidecar refused: bad_signature", "refused"),
    ],
)
async def test_a_push_becomes_a_verdict(
    deliverer: Deliverer,
    sidecars: FakeSidecars,
    metrics: Metrics,
    script: Script,
    verdict: Verdict,
    message: str,
    counted: str,
) -> None:
    sidecars.script(POD, script)
    outcome = await deliverer.deliver(POD, SNAPSHOT, check_first=False)
    assert (outcome.pod, outcome.revision, outcome.verdict) == (POD, SNAPSHOT.revision, verdict)
    assert outcome.message.startswith(message)
    assert pushes(metrics, counted) == 1
    assert sidecars.reads == []  # no state read without check_first


async def test_an_unreachable_pod_is_pending(
    deliverer: Deliverer, sidecars: FakeSidecars, metrics: Metrics
) -> None:
    sidecars.script(POD, "unreachable")
    outcome = await deliverer.deliver(POD, SNAPSHOT, check_first=False)
    assert outcome.verdict is Verdict.PENDING and "failed 3 times" in outcome.message
    assert pushes(metrics, "unreachable") == 1
    checked = await deliverer.deliver(POD, SNAPSHOT, check_first=True)  # the state read fails
    assert checked.verdict is Verdict.PENDING and sidecars.pushes == []
    assert pushes(metrics, "unreachable") == 2


async def test_checking_first_pushes_nothing_to_a_pod_that_holds_the_revision(
    deliverer: Deliverer, sidecars: FakeSidecars, metrics: Metrics
) -> None:
    sidecars.hold(POD, SNAPSHOT.ref, SNAPSHOT.revision)
    outcome = await deliverer.deliver(POD, SNAPSHOT, check_first=True)
    assert outcome.verdict is Verdict.APPLIED
    assert (sidecars.reads, sidecars.pushes) == (["web-0"], [])
    assert sum(pushes(metrics, o) for o in ("applied", "unchanged", "rejected")) == 0


async def test_checking_first_keeps_a_nack_the_pod_holds(
    deliverer: Deliverer, sidecars: FakeSidecars
) -> None:
    sidecars.hold(POD, SNAPSHOT.ref, SNAPSHOT.revision, nack=True)
    outcome = await deliverer.deliver(POD, SNAPSHOT, check_first=True)
    assert (outcome.verdict, outcome.message) == (Verdict.REJECTED, "worker (pid 7): bad port")
    assert sidecars.pushes == []


async def test_checking_first_pushes_to_a_pod_that_holds_another_revision(
    deliverer: Deliverer, sidecars: FakeSidecars
) -> None:
    sidecars.hold(POD, SNAPSHOT.ref, OLDER)
    outcome = await deliverer.deliver(POD, SNAPSHOT, check_first=True)
    assert outcome.verdict is Verdict.APPLIED
    assert sidecars.pushes == [("web-0", SNAPSHOT.revision)]
    assert sidecars.revision_of(POD, SNAPSHOT.ref) == SNAPSHOT.revision


@pytest.mark.parametrize("reason", ["stale", "replayed"])
async def test_a_stale_or_replayed_refusal_leads_to_a_state_read(
    deliverer: Deliverer, sidecars: FakeSidecars, metrics: Metrics, reason: Script
) -> None:
    # Another replica got there first: the pod holds the revision, its clients ACKed it.
    sidecars.hold(POD, SNAPSHOT.ref, SNAPSHOT.revision)
    sidecars.script(POD, reason)
    outcome = await deliverer.deliver(POD, SNAPSHOT, check_first=False)
    assert outcome.verdict is Verdict.APPLIED
    assert sidecars.reads == ["web-0"]
    assert pushes(metrics, "refused") == 1


async def test_a_refusal_after_the_state_read_is_pending_not_rejected(
    deliverer: Deliverer, sidecars: FakeSidecars, metrics: Metrics
) -> None:
    # The pod holds an older revision yet refuses ours as stale: ask no further, no verdict.
    sidecars.hold(POD, SNAPSHOT.ref, OLDER)
    sidecars.script(POD, "stale")
    outcome = await deliverer.deliver(POD, SNAPSHOT, check_first=False)
    assert (outcome.verdict, outcome.message) == (
        Verdict.PENDING, "sidecar: stale: refused by the fake"
    )  # fmt: skip
    assert sidecars.reads == ["web-0"]  # one read, after the first refusal
    assert pushes(metrics, "refused") == 2


async def test_an_unchanged_answer_is_counted_as_unchanged(
    deliverer: Deliverer, sidecars: FakeSidecars, metrics: Metrics
) -> None:
    sidecars.hold(POD, SNAPSHOT.ref, SNAPSHOT.revision)
    outcome = await deliverer.deliver(POD, SNAPSHOT, check_first=False)  # pushed regardless
    assert outcome.verdict is Verdict.APPLIED
    assert (pushes(metrics, "unchanged"), pushes(metrics, "applied")) == (1, 0)


async def test_a_pod_trusting_other_keys_is_pushed_the_revision_it_holds(
    sidecars: FakeSidecars, deliverer: Deliverer, signer: Signer, metrics: Metrics
) -> None:
    """Key rotation: the check-first read shows other trusted keys, so the held revision is
    pushed again (answered unchanged) to carry the announced keys; then nothing more."""
    sidecars.hold(POD, SNAPSHOT.ref, SNAPSHOT.revision)
    sidecars.trusted[POD.uid] = ("0123456789abcdef",)
    gauge = "hotconf_operator_pods_trusting_keys"
    assert await deliverer.deliver(POD, SNAPSHOT, check_first=True)
    assert sidecars.pushes == [(POD.name, SNAPSHOT.revision)]
    assert set(sidecars.trusted[POD.uid]) == signer.trust_ids
    assert pushes(metrics, "unchanged") == 1
    assert metrics.registry.get_sample_value(gauge) == 0  # counted from the pod's own state
    await deliverer.deliver(POD, SNAPSHOT, check_first=True)
    assert len(sidecars.pushes) == 1  # trusts the announced keys now: nothing to push
    assert metrics.registry.get_sample_value(gauge) == 1
    deliverer.forget(POD.uid)
    assert metrics.registry.get_sample_value(gauge) == 0
