"""Thread mode: each generation of the task runs in a daemon thread of this process.

Used by :func:`hotconf.run` with ``mode="thread"``. The cheapest switch-over, and the task shares
the process's memory, but Python cannot stop a thread from outside: a task that ignores
``draining`` past the drain deadline is reported as STUCK (and, with ``exit_on_stuck=True``, the
process exits so that Kubernetes restarts it). Task threads are daemon threads, so a stuck one
cannot keep the process alive at exit.

Thread mode's fast path lives here, as overrides of the plain supervisor's steps
(:mod:`._blocking`); see docs/performance.md ("CPU per config in the worker"):

* **Chained generations.** When a drain begins, the target's config is chained to the running
  thread *before* ``draining`` is set (:meth:`_ThreadGeneration.chain`). The moment the old run
  returns, the same thread builds and starts the new generation, and only then posts the old
  one's end; :meth:`ThreadRunner._retire` adopts the new generation and ACKs it. The path from
  the new config to the new run is two thread wake-ups (connection -> supervisor -> task thread)
  instead of five, and no thread is created. A newer revision during the drain re-chains, a stop
  unchains (:meth:`ThreadRunner._handle`); a successor that ends before it is adopted has its end
  replayed then.
* **Direct arrivals.** While the supervisor only waits with the task running, the relay
  connection's thread handles an arriving revision itself (:meth:`ThreadRunner._deliver`:
  validates it, chains it, sets ``draining``). A lock makes the threads take turns: the
  connection thread acts only while the supervisor waits, and the supervisor takes the lock to
  stop waiting. It keeps the drain deadline by never waiting longer than ``drain_timeout`` while
  RUNNING: the wait after the one a drain interrupts ends exactly at its deadline.
* **Direct hand-over.** When the old run returns on a drain the connection thread began and the
  supervisor still only waits, the task thread itself retires the old generation, adopts the one
  it has just started and ACKs it, under the same lock (:meth:`ThreadRunner._run_ended`), before
  it calls the task; so the supervisor does not wake per config at all (connection thread ->
  task thread, one wake-up each). In every other case (the supervisor is awake: a newer revision
  during the drain, a stop, its own drain, a STUCK report) the task thread posts the old run's
  end and the supervisor hands over as above. ``validate`` and ``on_event`` called by a thread
  acting in the supervisor's place run under the lock, so a ``close()`` from them only posts the
  stop (:meth:`ThreadRunner.close`).
"""

from __future__ import annotations

import itertools
import logging
import threading
import traceback
from collections.abc import Callable
from typing import Any, Final, Unpack

from hotconf._config import Config
from hotconf._runners._base import (
    Arrived,
    Exited,
    RunnerOptions,
    RunnerState,
    Stop,
    _Target,
    now,
)
from hotconf._runners._blocking import BlockingRunner, Generation
from hotconf_wire.protocol import ConfigSnapshot

__all__ = ["ThreadRunner"]

logger: Final = logging.getLogger("hotconf")
_numbers: Final = itertools.count(1)

#: Below this drain_timeout the connection thread leaves every revision to the supervisor, which
#: would otherwise wake that often while idle to keep a drain's deadline.
_DIRECT_MIN_DRAIN: Final = 0.05


#: What a task thread calls when a run returns: (the generation, its traceback if it raised).
RunEnded = Callable[["_ThreadGeneration", str | None], None]


class _ThreadGeneration(Generation):
    def __init__(
        self,
        task: Callable[..., Any],
        config: Config,
        post: Callable[[object], None],
        ended: RunEnded,
    ) -> None:
        super().__init__(config, post)
        self.task = task
        #: Called on this run's thread when the run returned, once ``successor`` is set.
        self.ended = ended
        self.draining = threading.Event()
        self.thread: threading.Thread | None = None
        #: The generation this run's thread started, on the chained config, when it returned;
        #: set before this run's Exited is posted.
        self.successor: _ThreadGeneration | None = None
        self._lock = threading.Lock()
        self._next: Config | None = None  # chained: what to run when this run returns
        self._ended = False  # this run returned: nothing can be chained to it any more

    def _main(self) -> None:
        """The thread: run this generation, then one built on each config chained to the last."""
        generation: _ThreadGeneration | None = self
        self.started_at = now()
        while generation is not None:
            error = None
            try:
                generation.task(generation.config, generation.draining)
            except BaseException:
                error = traceback.format_exc()
            following = None
            with generation._lock:
                generation._ended = True
                config = generation._next
                if config is not None:
                    following = _ThreadGeneration(
                        generation.task, config, generation.post, generation.ended
                    )
                    following.thread = generation.thread
                    following.started_at = now()
                    generation.successor = following
                    generation._next = None
            generation.ended(generation, error)
            generation = following

    def start(self) -> float:
        self.thread = threading.Thread(
            target=self._main, name=f"hotconf-task-{next(_numbers)}", daemon=True
        )
        self.thread.start()  # returns once the thread runs
        return self.started_at or now()

    def drain(self) -> None:
        self.draining.set()

    def force(self, grace: float) -> bool:
        return False  # a thread cannot be stopped from outside

    def chain(self, config: Config | None) -> bool:
        """Have this run's thread start a generation on ``config`` the moment the run returns
        (None: start nothing); False if the run has already returned. Chaining again replaces
        the config."""
        with self._lock:
            if self._ended:
                return False
            self._next = config
            return True

    def reap(self) -> None:
        if self.successor is None and self.thread is not None:
            self.thread.join()


class ThreadRunner(BlockingRunner):
    """Runs ``task(config, draining: threading.Event)`` in a thread per generation.

    ``ThreadRunner(task, **options).run()`` is ``hotconf.run(task, mode="thread", **options)``.
    """

    mode = "thread"

    def __init__(self, task: Callable[..., Any], **options: Unpack[RunnerOptions]) -> None:
        super().__init__(task, **options)
        self._gen: _ThreadGeneration | None = None
        # Taken by the connection thread to begin a switch-over, and by the supervisor to start
        # and stop waiting: the connection thread acts only while the supervisor waits.
        self._lock = threading.Lock()
        self._waiting = False  # the supervisor waits for its inbox
        self._direct_deadline: float | None = None  # of a drain the connection thread began
        self._chained: _Target | None = None  # the target chained to the draining generation
        self._early: list[Exited] = []  # ends of successors not adopted yet
        #: The thread (ident) acting in the supervisor's place under the lock, if any: the
        #: connection thread beginning a switch-over, a task thread handing over.
        self._stand_in: int | None = None

    def close(self) -> None:
        """As :meth:`BlockingRunner.close`; but from ``validate`` or ``on_event`` called on a
        thread acting in the supervisor's place, only ask to stop: waiting for run() to return
        there would hold the lock the supervisor needs to stop."""
        if self._stand_in == threading.get_ident():
            self._inbox.put(Stop("close()"))
            return
        super().close()

    def _generation(self, config: Config) -> _ThreadGeneration:
        return _ThreadGeneration(self.task, config, self._inbox.put, self._run_ended)

    @property
    def _direct(self) -> bool:
        """Whether the connection thread may begin switch-overs (see the module docstring)."""
        return self.options.drain_timeout >= _DIRECT_MIN_DRAIN

    # -- direct arrivals --------------------------------------------------------------------------

    def _deliver(self, snapshot: ConfigSnapshot, received_at: float) -> None:
        """On the connection thread: begin the switch-over here when the supervisor only waits
        with the task running (one thread wake-up fewer per config); else queue the snapshot."""
        if self._direct:
            with self._lock:
                generation = self._gen
                if (
                    self._waiting
                    and self._state is RunnerState.RUNNING
                    and not self._stopping
                    and self._target is None
                    and generation is not None
                    and not generation.exited
                ):
                    self._stand_in = threading.get_ident()
                    try:
                        self._handle(Arrived(snapshot, received_at))
                        if self._target is not None:
                            self._direct_deadline = self._begin_drain(generation)
                    finally:
                        self._stand_in = None
                    return
        super()._deliver(snapshot, received_at)

    def _next(self, timeout: float | None) -> list[object]:
        if timeout is None and self._direct and self._state is RunnerState.RUNNING:
            # A drain the connection thread begins during this wait is due drain_timeout later.
            timeout = self.options.drain_timeout
        with self._lock:
            self._waiting = True
        try:
            return super()._next(timeout)
        finally:
            with self._lock:
                self._waiting = False

    # -- chained generations ----------------------------------------------------------------------

    def _handle(self, item: object) -> None:
        if isinstance(item, Exited) and item.generation is not self._gen:
            # A successor's end can arrive in the same batch as its predecessor's, before it is
            # the current generation: keep it for _retire to replay.
            self._early.append(item)
            return
        super()._handle(item)
        if self._state in (RunnerState.DRAINING, RunnerState.STUCK):
            self._chain()  # a newer target, or a stop, applies to the draining thread now

    def _chain(self) -> None:
        """Chain the target to the running generation (nothing once stopping). A successor
        that already started stays: the newer target waits for the next switch-over."""
        generation = self._gen
        wanted = None if self._stopping else self._target
        if generation is None or wanted is self._chained:
            return
        if generation.chain(wanted.config if wanted is not None else None):
            self._chained = wanted

    def _begin_drain(self, generation: Generation) -> float:
        if self._direct_deadline is not None:  # begun by the connection thread
            deadline, self._direct_deadline = self._direct_deadline, None
            return deadline
        self._chain()  # before `draining` is set: the thread may return at once
        return super()._begin_drain(generation)

    def _retire(self) -> None:
        """Retire as the plain supervisor does; then adopt the generation the old run's thread
        started on the chained target, and ACK it."""
        generation = self._gen
        super()._retire()
        self._direct_deadline = None
        chained, self._chained = self._chained, None
        early, self._early = self._early, []
        if generation is None or not generation.exited:
            return  # nothing ran, or a stuck thread left behind as the runner stops
        successor = generation.successor
        if successor is None or chained is None:
            return  # not chained after all: the target, if any, is launched as usual
        self._adopt(successor, chained)
        for item in early:  # the successor may have ended already, before it was current
            if item.generation is successor:
                self._handle(item)
        if self._stopping:
            self._retire()  # it started as the stop arrived: drain it before run() returns

    def _adopt(self, successor: _ThreadGeneration, chained: _Target) -> None:
        """Make ``successor`` (started by the old run's thread on ``chained``) the running
        generation and ACK it; the old generation is retired already."""
        if self._target is chained:
            self._target = None
        self._gen = successor
        # The old run returned, and its thread started the successor, at successor.started_at.
        self._drained_at = successor.started_at
        self._started(chained, successor.started_at)

    # -- direct hand-over -------------------------------------------------------------------------

    def _run_ended(self, generation: _ThreadGeneration, error: str | None) -> None:
        """On a task thread: ``generation``'s run returned (``successor`` set if it started one).

        Hands over right here, as :meth:`_retire` would, when the drain is one the connection
        thread began and the supervisor still only waits (see the module docstring): then the
        supervisor is in the wait the drain interrupted, holds nothing, and acts again only
        after taking the lock. Otherwise the supervisor learns of the end from its inbox.
        """
        successor = generation.successor
        if successor is not None:
            with self._lock:
                chained = self._chained
                if (
                    self._waiting
                    and self._direct_deadline is not None
                    and self._state is RunnerState.DRAINING
                    and not self._stopping
                    and self._gen is generation
                    and not generation.exited
                    and chained is not None
                    and chained.config is successor.config
                ):
                    self._stand_in = threading.get_ident()
                    try:
                        generation.exited = True
                        if error is not None:
                            logger.warning("hotconf: the task raised while draining:\n%s", error)
                        self._direct_deadline = None
                        self._chained = None
                        # What the plain _retire does between the old run's end and the new start.
                        self._gen = None
                        self._set_state(RunnerState.RESTARTING)
                        self._adopt(successor, chained)
                    finally:
                        self._stand_in = None
                    return
        generation.post(Exited(generation, error))
