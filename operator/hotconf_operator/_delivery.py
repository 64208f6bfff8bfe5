"""Bring one pod to one revision of one ConfigMap, and say how it went.

:class:`Deliverer` is shared by ``_rollout`` (a new revision, pushed at once) and ``_reconcile``
(a late pod, a restarted sidecar or operator: ``GET /v2/state`` first, push only if the pod holds
another revision); ``__main__`` builds one and hands it to both. It turns every answer into a
:class:`~hotconf_operator._outcome.PodOutcome`: ``applied`` when every client of the pod ACKed,
``held`` when none is connected (the sidecar holds it for the next one), ``rejected`` when a
client NACKed or the sidecar refused the envelope, ``pending`` when the pod did not answer or a
client timed out. A push refused as ``stale`` or ``replayed`` (someone got there first) is
followed by a state read. It also counts pushes by outcome for the metrics.

Key rotation: a pod whose state reports trusting other keys than the signer announces
(``PodState.trusted``) is pushed the revision it holds anyway; the sidecar answers
``unchanged`` and adopts the announced keys, so a reconcile sweep carries a new key to every
pod without a config change. The deliverer remembers which pods trust exactly the announced
keys, from each state read (every sweep), for ``hotconf_operator_pods_trusting_keys``;
``_reconcile`` tells it of pods gone.

A pod that does not answer is pending, and the deliverer tells ``on_unreachable`` (set by
``_reconcile``, which follows the pod with short probes, :meth:`Deliverer.answers`, until it is
back). It talks to the sidecars through :class:`SidecarApi`, which ``_pusher.Pusher``
implements over HTTP and unit tests implement with canned answers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from prometheus_client import Counter

from hotconf_operator._errors import PodUnreachable, PushFailed, PushRefused
from hotconf_operator._index import PodTarget
from hotconf_operator._metrics import Metrics
from hotconf_operator._outcome import PodOutcome, Verdict, verdict_of_clients
from hotconf_operator._signing import SignedPush, Signer
from hotconf_wire.answers import HeldConfig, PodState, PushAnswer
from hotconf_wire.protocol import ConfigMapRef, ConfigSnapshot
from hotconf_wire.trace import DISABLED, Tracer

__all__ = ["Deliverer", "SidecarApi", "UnreachableFn"]

logger = logging.getLogger("hotconf_operator.delivery")

#: Refusal reasons that mean "this pod already has it, or something newer": ask, do not reject.
_ASK_AGAIN = ("stale", "replayed")


class SidecarApi(Protocol):
    """What :class:`Deliverer` needs of the sidecars (``_pusher.Pusher`` over HTTP)."""

    async def push(self, target: PodTarget, signed: SignedPush) -> PushAnswer:
        """The sidecar's answer to a push; raises PushRefused (4xx) or PodUnreachable."""
        ...

    async def state(self, target: PodTarget) -> PodState:
        """What the pod holds; raises PushRefused or PodUnreachable."""
        ...

    async def probe(self, target: PodTarget, *, within: float) -> PodState:
        """One short state read, not retried; raises PushRefused or PodUnreachable."""
        ...


#: Told of each pod that did not answer, with the snapshot it should have got (``_reconcile``
#: follows the pod until it is back).
UnreachableFn = Callable[[PodTarget, ConfigSnapshot], None]


class Deliverer:
    """Pushes (or checks, then pushes) one snapshot to one pod."""

    def __init__(
        self, *, pusher: SidecarApi, signer: Signer, metrics: Metrics, tracer: Tracer = DISABLED
    ) -> None:
        self._pusher = pusher
        self._signer = signer
        self._metrics = metrics
        self._tracer = tracer
        self._counters: dict[str, Counter] = {}  # outcome -> its child of the pushes counter
        self._trusting: set[str] = set()  # uids of pods known to trust exactly the announced keys
        #: pod uid -> ConfigMap -> the revision its applications last applied, as seen here
        self._runs: dict[str, dict[ConfigMapRef, str]] = {}
        metrics.pods_trusting_keys.set_function(lambda: len(self._trusting))
        #: Set by ``_reconcile``: told of every pod that did not answer a push or state read.
        self.on_unreachable: UnreachableFn | None = None

    def _unreachable(self, pod: PodTarget, snapshot: ConfigSnapshot, why: str) -> PodOutcome:
        self._count("unreachable")
        if self.on_unreachable is not None:
            self.on_unreachable(pod, snapshot)
        return self._outcome(pod, snapshot, Verdict.PENDING, why)

    async def answers(self, pod: PodTarget, *, within: float) -> bool:
        """Whether the pod answers one short state read now (a pod that did not is back)."""
        try:
            await self._pusher.probe(pod, within=within)
        except PushFailed:
            return False
        return True

    def forget(self, uid: str) -> None:
        """The pod is gone: it no longer counts as trusting the announced keys."""
        self._trusting.discard(uid)
        self._runs.pop(uid, None)

    def _trusts(self, pod: PodTarget, trusted: tuple[str, ...] | None) -> bool:
        """Record what the pod reports trusting; whether it is what the signer announces (a
        sidecar that reports nothing predates rotation: nothing to push, and it does not count
        as trusting the announced keys)."""
        if trusted is None:
            self._trusting.discard(pod.uid)
            return True
        if frozenset(trusted) == self._signer.trust_ids:
            self._trusting.add(pod.uid)
            return True
        self._trusting.discard(pod.uid)
        logger.info(
            "pod %s/%s trusts key(s) %s; announcing %s",
            pod.namespace,
            pod.name,
            " ".join(sorted(trusted)),
            " ".join(sorted(self._signer.trust_ids)),
        )
        return False

    def _count(self, outcome: str) -> None:
        counter = self._counters.get(outcome)
        if counter is None:
            counter = self._counters[outcome] = self._metrics.pushes.labels(outcome=outcome)
        counter.inc()

    def _ran(self, pod: PodTarget, ref: ConfigMapRef, revision: str) -> None:
        """The pod's applications applied ``revision`` of ``ref``."""
        self._runs.setdefault(pod.uid, {})[ref] = revision

    def _outcome(self, pod: PodTarget, snap: ConfigSnapshot, v: Verdict, msg: str) -> PodOutcome:
        if v is Verdict.APPLIED:
            self._ran(pod, snap.ref, snap.revision)
        runs = self._runs.get(pod.uid, {}).get(snap.ref, "")
        return PodOutcome(pod=pod, revision=snap.revision, verdict=v, message=msg, runs=runs)

    async def held(self, pod: PodTarget, snapshot: ConfigSnapshot) -> HeldConfig | None:
        """What the pod reports holding of this snapshot's ConfigMap; raises PushFailed."""
        return (await self._pusher.state(pod)).held(snapshot.ref)

    async def deliver(
        self, pod: PodTarget, snapshot: ConfigSnapshot, *, check_first: bool
    ) -> PodOutcome:
        if check_first:
            try:
                state = await self._pusher.state(pod)
            except PushFailed as exc:
                return self._unreachable(pod, snapshot, str(exc))
            entry = state.held(snapshot.ref)
            trusts = self._trusts(pod, state.trusted)
            if entry is not None and verdict_of_clients(entry.clients)[0] is Verdict.APPLIED:
                self._ran(pod, snapshot.ref, entry.revision)
            if entry is not None and entry.revision == snapshot.revision and trusts:
                verdict, message = verdict_of_clients(entry.clients)
                return self._outcome(pod, snapshot, verdict, message)
        signed = self._signer.sign_push(pod.ref, snapshot)
        trace = self._tracer
        if trace.enabled:
            trace.mark("operator.signed", cm=snapshot.ref, rev=snapshot.revision, pod=pod.name)
        try:
            answer = await self._pusher.push(pod, signed)
        except PodUnreachable as exc:
            return self._unreachable(pod, snapshot, str(exc))
        except PushRefused as exc:
            self._count("refused")
            if exc.reason not in _ASK_AGAIN:
                return self._outcome(pod, snapshot, Verdict.REJECTED, f"sidecar refused: {exc}")
            if check_first:  # asked already: the pod holds another revision; no verdict yet
                return self._outcome(pod, snapshot, Verdict.PENDING, f"sidecar: {exc}")
            # Someone (another replica, or an earlier attempt) got there first: ask.
            return await self.deliver(pod, snapshot, check_first=True)
        if trace.enabled:
            trace.mark("operator.answered", cm=snapshot.ref, rev=snapshot.revision, pod=pod.name)
        verdict, message = verdict_of_clients(answer.clients)
        if verdict in (Verdict.APPLIED, Verdict.HELD) and answer.status == "unchanged":
            self._count("unchanged")
        else:
            self._count(str(verdict))
        return self._outcome(pod, snapshot, verdict, message)
