"""The sidecar's core: verify, persist, relay, report; and its lifecycle.

Created by :mod:`hotconf_sidecar.__main__`; :mod:`hotconf_sidecar._http` turns HTTP requests
into calls of :meth:`Sidecar.push` and :meth:`Sidecar.state`. A push is handled in the order
that keeps the latency down and loses nothing:

1. verify the envelope (:mod:`._verify`) and decide against the held sequence;
2. adopt the operator keys the push announces (:mod:`._trust`, persisted first), then persist
   the payload (:mod:`._store`) and hold it — nothing older is accepted from here on;
3. publish the snapshot to the relay, which writes it to every subscribed client at once;
4. while the clients work, run the adapters (files swap, signal, notify URL);
5. wait for every client's verdict up to the ack timeout, and answer.

A push with the held revision and a higher sequence is persisted (the sequence moves on) and
answered ``unchanged`` with each client's current verdict; it is not published again, because
the relay has already sent the held revision to every connected subscriber.

Lifecycle (:class:`SidecarState`, in ``Sidecar.lifecycle``): starting -> running -> draining ->
stopped. A push outside ``running`` raises :class:`~hotconf_sidecar._errors.Unavailable`
(answered 503).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from typing import Final

from hotconf_sidecar._adapters import (
    AdapterResult,
    FilesAdapter,
    NotifyUrlAdapter,
    SignalAdapter,
)
from hotconf_sidecar._errors import Unavailable
from hotconf_sidecar._memory import Trimmer
from hotconf_sidecar._metrics import Metrics
from hotconf_sidecar._store import Held, Store
from hotconf_sidecar._verify import Verifier, check_sequence
from hotconf_wire.answers import ClientVerdict, HeldConfig, PodState, PushAnswer, PushStatus
from hotconf_wire.envelope import PodRef
from hotconf_wire.errors import EnvelopeError
from hotconf_wire.protocol import ConfigMapRef
from hotconf_wire.relay import Relay
from hotconf_wire.trace import DISABLED, Tracer

__all__ = ["Sidecar", "SidecarState"]

logger: Final = logging.getLogger("hotconf_sidecar")


class SidecarState(enum.Enum):
    """Where a :class:`Sidecar` is in its lifecycle; only ``RUNNING`` takes pushes."""

    STARTING = "starting"
    RUNNING = "running"
    DRAINING = "draining"
    STOPPED = "stopped"


def _adapter_verdict(result: AdapterResult, revision: str) -> ClientVerdict:
    return ClientVerdict(result.id, result.id, None, revision, result.result, result.message)


class Sidecar:
    """One pod's sidecar; see the module docstring."""

    def __init__(
        self,
        *,
        pod: PodRef,
        verifier: Verifier,
        store: Store,
        relay: Relay,
        ack_timeout: float,
        files: FilesAdapter | None = None,
        notify_url: NotifyUrlAdapter | None = None,
        signal: SignalAdapter | None = None,
        tracer: Tracer = DISABLED,
    ) -> None:
        self.pod = pod
        self.tracer = tracer
        self._pod_name = f"{pod.namespace}/{pod.name}"
        self.verifier = verifier
        self.store = store
        self.relay = relay
        self.ack_timeout = ack_timeout
        self.files = files
        self.notify_url = notify_url
        self.signal = signal
        self.metrics = Metrics(clients=lambda: len(relay.clients()))
        self.lifecycle = SidecarState.STARTING
        self._held: dict[ConfigMapRef, Held] = {}
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._trimmer = Trimmer()

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """State loaded and the relay listening."""
        return self.lifecycle is SidecarState.RUNNING

    async def start(self) -> None:
        """Load the persisted state, then serve it on the relay socket."""
        if self.lifecycle is not SidecarState.STARTING:
            raise RuntimeError(f"sidecar cannot start: it is {self.lifecycle.value}")
        self.verifier.trust.load()
        self._held = self.store.load()
        for ref, held in self._held.items():
            self.metrics.held(ref, held.snapshot.revision, held.sequence)
            if self.files is not None:
                self.files.apply(held.snapshot)
        self.relay.load((h.snapshot, h.frame) for h in self._held.values())
        await self.relay.start()
        self.lifecycle = SidecarState.RUNNING
        logger.info("state loaded: %d ConfigMap(s); ready", len(self._held))

    async def aclose(self, *, deadline: float) -> None:
        """Refuse new pushes, let running ones answer (up to ``deadline`` s), close the relay."""
        if self.lifecycle in (SidecarState.DRAINING, SidecarState.STOPPED):
            return
        self.lifecycle = SidecarState.DRAINING
        try:
            await asyncio.wait_for(self._idle.wait(), deadline)
        except TimeoutError:
            logger.warning(
                "%d push(es) still running after %.1fs; stopping", self._inflight, deadline
            )
        await self.relay.aclose()
        self._trimmer.cancel()
        self.lifecycle = SidecarState.STOPPED

    # -- pushes ---------------------------------------------------------------------------------

    async def push(self, body: bytes, *, signature: str | None) -> PushAnswer:
        """Handle one push (its body and ``Hotconf-Signature`` header); return the answer or
        raise ``EnvelopeError``/``Unavailable``."""
        if self.lifecycle is not SidecarState.RUNNING:
            raise Unavailable(f"the sidecar is {self.lifecycle.value}; retry later")
        self._inflight += 1
        self._idle.clear()
        try:
            return await self._push(body, signature)
        except EnvelopeError as exc:
            self.metrics.rejected.labels(exc.reason).inc()
            logger.warning("push rejected: %s", exc)
            raise
        finally:
            self._trimmer.after(len(body))
            self._inflight -= 1
            if not self._inflight:
                self._idle.set()

    async def _push(self, payload: bytes, signature: str | None) -> PushAnswer:
        trace = self.tracer
        received = time.monotonic() if trace.enabled else 0.0
        push = self.verifier.verify(payload, signature)
        snapshot = push.snapshot
        ref = snapshot.ref
        pod = self._pod_name
        if trace.enabled:
            trace.mark("sidecar.received", cm=ref, rev=snapshot.revision, pod=pod, at=received)
            trace.mark("sidecar.verified", cm=ref, rev=snapshot.revision, pod=pod)
        held = self._held.get(ref)
        decision = check_sequence(
            push,
            held_revision=held.snapshot.revision if held else None,
            held_sequence=held.sequence if held else None,
        )
        # From here to the publish there is no await: two pushes cannot interleave their
        # check, save and hold.
        if push.trust is not None:
            self.verifier.trust.adopt(push.trust, sequence=push.sequence)
        self.store.save(push, payload)
        if trace.enabled:
            trace.mark("sidecar.persisted", cm=ref, rev=snapshot.revision, pod=pod)
        if decision == "unchanged":
            assert held is not None
            self._held[ref] = Held(held.snapshot, push.sequence, held.frame)
            self.metrics.held(ref, held.snapshot.revision, push.sequence)
            self.metrics.unchanged.inc()
            clients = [
                c.verdicts[ref] for c in self.relay.clients() if c.wants(ref) and ref in c.verdicts
            ]
            logger.info("push %s %s seq=%d unchanged", ref, snapshot.revision, push.sequence)
            return self._answer("unchanged", snapshot.revision, push.sequence, clients)
        self._held[ref] = Held(snapshot, push.sequence, push.frame)
        self.metrics.held(ref, snapshot.revision, push.sequence)

        started = time.perf_counter()
        # The frames go to the clients now, before the adapters run; no task, no extra wake-up.
        relayed = time.monotonic() if trace.enabled else 0.0  # before a client can have it
        publication = self.relay.send(snapshot, body=push.frame)
        if trace.enabled:
            trace.mark("sidecar.relayed", cm=ref, rev=snapshot.revision, pod=pod, at=relayed)
        adapters: list[AdapterResult] = []
        if self.files is not None or self.signal is not None or self.notify_url is not None:
            await publication.drained()
        current = self._held.get(ref)
        if current is not None and current.snapshot is snapshot:  # not overtaken meanwhile
            if self.files is not None:
                adapters.append(self.files.apply(snapshot))
            if self.signal is not None:
                adapters.append(self.signal.notify(snapshot))
            if self.notify_url is not None:
                adapters.append(await self.notify_url.notify(snapshot))
        verdicts = await publication.verdicts(self.ack_timeout)
        elapsed = time.perf_counter() - started
        self.metrics.relay_seconds.observe(elapsed)
        self.metrics.applied.inc()
        clients = verdicts + [_adapter_verdict(a, snapshot.revision) for a in adapters]
        if trace.enabled:
            trace.mark("sidecar.answered", cm=ref, rev=snapshot.revision, pod=pod)
        if logger.isEnabledFor(logging.INFO):  # the summary is built only to be logged
            logger.info(
                "push %s %s seq=%d applied in %.1fms: %s",
                ref,
                snapshot.revision,
                push.sequence,
                elapsed * 1000,
                " ".join(f"{c.id}={c.result}" for c in clients) or "no clients",
            )
        return self._answer("applied", snapshot.revision, push.sequence, clients)

    @staticmethod
    def _answer(
        status: PushStatus, revision: str, sequence: int, clients: list[ClientVerdict]
    ) -> PushAnswer:
        return PushAnswer(status, revision, sequence, tuple(clients))

    # -- reconciliation -------------------------------------------------------------------------

    def state(self) -> PodState:
        """What this pod holds per ConfigMap and what each client answered about it."""
        clients = self.relay.clients()
        return PodState(
            pod=self.pod,
            configmaps=tuple(
                HeldConfig(
                    ref=ref,
                    revision=held.snapshot.revision,
                    sequence=held.sequence,
                    clients=tuple(c.verdicts[ref] for c in clients if ref in c.verdicts),
                )
                for ref, held in sorted(self._held.items())
            ),
            trusted=self.verifier.trust.ids,
        )
