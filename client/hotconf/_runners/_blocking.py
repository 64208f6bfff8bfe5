"""The supervisor loop of the blocking runners (thread and process modes).

Subclassed by :class:`~hotconf._runners._thread.ThreadRunner` and
:class:`~hotconf._runners._process.ProcessRunner`, which supply a :class:`Generation` (one run of
the task on one config). ``run()`` blocks the calling thread and serves one inbox, a
``queue.SimpleQueue`` fed by the relay connection's thread (arriving snapshots), by the
generations (their end) and by signal handlers and ``close()`` (stop requests);
``SimpleQueue.put`` is reentrant, so a signal handler may call it.
"""

from __future__ import annotations

import abc
import logging
import queue
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any, Final

from hotconf._config import Config
from hotconf._errors import RunnerError
from hotconf._runners._base import (
    Arrived,
    BaseRunner,
    Exited,
    GenerationBase,
    RunnerOptions,
    RunnerState,
    Stop,
    _Target,
    coalesce,
    now,
)
from hotconf_wire.protocol import ConfigSnapshot

__all__ = ["BlockingRunner", "Generation"]

logger: Final = logging.getLogger("hotconf")

#: Below this drain_timeout the connection thread leaves every revision to the supervisor, which
#: would otherwise wake that often while idle to keep a drain's deadline.
_DIRECT_MIN_DRAIN: Final = 0.05


class Generation(GenerationBase, abc.ABC):
    """One run of the task on one config, in a thread or a process."""

    def __init__(self, config: Config, post: Callable[[object], None]) -> None:
        super().__init__()
        self.config = config
        self.post = post
        #: When the run began (``now()``); set by the mode once it runs.
        self.started_at = 0.0
        #: The chained generation that started when this run returned (see :meth:`chain`).
        self.successor: Generation | None = None

    @abc.abstractmethod
    def start(self) -> float:
        """Start the run; return once it runs, with the ``now()`` at which it began.

        Raise :class:`RunnerError` if it cannot start; post :class:`Exited` when it ends.
        """

    @abc.abstractmethod
    def drain(self) -> None:
        """Set the run's ``draining`` Event."""

    @abc.abstractmethod
    def force(self, grace: float) -> bool:
        """The drain deadline passed: stop the run by force; False if that is impossible."""

    def chain(self, successor: Generation | None) -> bool:
        """Have ``successor`` start, in this run's place, the moment this run returns (None:
        start nothing); False if this mode cannot, or the run has already returned.

        A chained generation that starts is recorded as :attr:`successor`, with its
        :attr:`started_at`, before this run's :class:`Exited` is posted. Chaining again
        replaces a successor that has not started.
        """
        return False


@dataclass(slots=True)
class _Drain:
    """A drain in progress: the generation, when it is due, and what is chained to it."""

    generation: Generation
    deadline: float
    chained: tuple[_Target, Generation] | None


class BlockingRunner(BaseRunner):
    """Runs ``task(config, draining)`` and restarts it on each new revision; blocks in run().

    A revision that arrives while the supervisor waits with the task running is handled by the
    relay connection's thread itself (validated, chained, ``draining`` set) when the mode sets
    :attr:`direct_arrivals`: the supervisor is woken only once, when the new generation runs,
    to ACK it. It keeps the drain deadline by waiting at most ``drain_timeout`` at a time.
    """

    #: Whether the connection thread may begin a switch-over itself (see the class docstring).
    direct_arrivals = False

    def __init__(self, task: Callable[..., Any], **options: Any) -> None:
        super().__init__(task, RunnerOptions(**options))
        self._inbox: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._gen: Generation | None = None
        self._early: list[Exited] = []
        self._done = threading.Event()
        self._runner_thread: threading.Thread | None = None
        # Held by the supervisor except while it waits for its inbox; the relay connection's
        # thread takes it to handle an arriving revision itself (see _deliver).
        self._lock = threading.Lock()
        self._idle = False  # the supervisor waits, RUNNING, with nothing else to do
        self._drain: _Drain | None = None

    @abc.abstractmethod
    def _generation(self, config: Config) -> Generation:
        """A new, unstarted generation on ``config``."""

    # -- public lifecycle ---------------------------------------------------------------------

    def run(self) -> None:
        """Connect, wait for the first config, run the task and follow revisions until stopped.

        Returns after close(), SIGTERM or SIGINT (handled only when called from the main
        thread), once the task drained. Raises FirstConfigTimeout when no valid config arrives
        in time, RunnerError on misuse.
        """
        self._begin()
        self._runner_thread = threading.current_thread()
        restore = self._install_signals()
        self._lock.acquire()
        try:
            self._connect(self._deliver)
            self._supervise()
        finally:
            self._stopping = True
            try:
                self._retire()
            finally:
                self._lock.release()  # before the join: the connection thread may want it
                self._disconnect()
                restore()
                self._finish()
                self._done.set()

    def close(self) -> None:
        """Drain the task and stop; from another thread, waits until run() has returned."""
        if self._state is RunnerState.CREATED:
            self._begin()
            self._finish()
            self._done.set()
            return
        self._inbox.put(Stop("close()"))
        if threading.current_thread() is not self._runner_thread:
            self._done.wait()

    def __enter__(self) -> BlockingRunner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the loop -------------------------------------------------------------------------------

    def _install_signals(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def handler(signum: int, frame: FrameType | None) -> None:
            self._inbox.put(Stop(signal.Signals(signum).name))

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}

        def restore() -> None:
            for sig, old in previous.items():
                signal.signal(sig, old)

        return restore

    def _next(self, timeout: float | None) -> list[object]:
        """What arrived within ``timeout``: every waiting item, snapshots coalesced per ConfigMap
        to the newest."""
        self._lock.release()
        try:
            items = [self._inbox.get(timeout=timeout)]
        except queue.Empty:
            return []
        finally:
            self._lock.acquire()
        while True:
            try:
                items.append(self._inbox.get_nowait())
            except queue.Empty:
                break
        return coalesce(items)

    @property
    def _direct(self) -> bool:
        """Whether the connection thread may begin switch-overs (see the class docstring)."""
        return self.direct_arrivals and self.options.drain_timeout >= _DIRECT_MIN_DRAIN

    def _deliver(self, snapshot: ConfigSnapshot, received_at: float) -> None:
        """On the connection thread: a snapshot arrived. Begin the switch-over here when the
        supervisor only waits (one thread wake-up fewer per config); else queue it."""
        if self._direct:
            with self._lock:
                generation = self._gen
                if (
                    self._idle
                    and not self._stopping
                    and self._target is None
                    and self._drain is None
                    and generation is not None
                    and not generation.exited
                ):
                    self._handle(Arrived(snapshot, received_at))
                    if self._target is not None:
                        self._begin_drain(generation)
                    return
        self._inbox.put(Arrived(snapshot, received_at))

    def _supervise(self) -> None:
        deadline = now() + self.options.first_config_timeout
        while self._target is None:
            if self._stopping:
                return
            remaining = deadline - now()
            if remaining <= 0:
                raise self._first_config_timeout()
            for item in self._next(remaining):
                self._handle(item)
        # Waiting at most drain_timeout keeps a drain begun by the connection thread on time:
        # the wait after the one it interrupts ends exactly at its deadline (see _retire).
        idle_wait = self.options.drain_timeout if self._direct else None
        while not self._stopping:
            if self._drain is not None or (self._target is not None and self._gen is not None):
                self._retire()
                continue
            if self._target is not None:
                self._launch()
                continue
            self._idle = self._gen is not None and self._state is RunnerState.RUNNING
            try:
                items = self._next(idle_wait)
            finally:
                self._idle = False
            for item in items:
                self._handle(item)

    def _launch(self) -> None:
        target, self._target = self._target, None
        assert target is not None
        generation = self._generation(target.config)
        try:
            started_at = generation.start()
        except RunnerError as exc:
            if self._running is None:
                raise
            self._start_failed(target, str(exc))
            return
        self._gen = generation
        self._started(target, started_at)

    def _begin_drain(self, generation: Generation) -> None:
        """Set ``draining`` with the target chained to the generation; _retire finishes it."""
        self._set_state(RunnerState.DRAINING)
        chained = self._chain(generation, None)
        generation.drain()
        self._drain = _Drain(generation, now() + self.options.drain_timeout, chained)

    def _retire(self) -> None:
        """Drain the running generation, by force after the deadline; never leave two running.

        While it drains, the target (the newest valid revision) is chained to it, so that a
        mode that can (thread mode) starts it the moment the old run returns. The drain may
        have been begun by the connection thread (:meth:`_deliver`).
        """
        generation = self._gen
        if generation is None:
            self._drain = None
            return
        if self._drain is None and not generation.exited:
            self._begin_drain(generation)
        drain, self._drain = self._drain, None
        chained = drain.chained if drain is not None else None
        if drain is not None:
            # Messages handled since the drain began (a stop, a newer revision) apply now.
            chained = self._chain(generation, chained)
            while not generation.exited and not self._hurry:
                remaining = drain.deadline - now()
                if remaining <= 0:
                    break
                for item in self._next(remaining):
                    self._handle(item)
                chained = self._chain(generation, chained)
        if not generation.exited:
            what = f"did not return within drain_timeout={self.options.drain_timeout:g}s"
            if generation.force(self.options.kill_grace):
                logger.warning("hotconf: the %s task %s; stopped it by force", self.mode, what)
                generation.exited = True
            else:
                self._report_stuck(what + " after `draining` was set")
                while not generation.exited and not self._stopping:
                    for item in self._next(None):
                        self._handle(item)
                    chained = self._chain(generation, chained)
                if not generation.exited:
                    chained = self._chain(generation, chained)
                    logger.error("hotconf: leaving the stuck task behind as the runner stops")
                    self._gen = None
                    return
        generation.reap()
        self._gen = None
        successor = generation.successor
        early, self._early = self._early, []
        if chained is not None and successor is chained[1]:
            self._gen = successor
            self._started(chained[0], successor.started_at)
            for item in early:  # the successor may have ended already, before it was current
                if item.generation is successor:
                    self._handle(item)
        elif chained is not None and self._target is None and not self._stopping:
            self._target = chained[0]  # not started after all: launch it as usual
        if self._gen is None and self._target is not None and not self._stopping:
            self._set_state(RunnerState.RESTARTING)

    def _handle(self, item: object) -> None:
        if isinstance(item, Exited) and item.generation is not self._gen:
            # A chained successor's end can arrive in the same batch as its predecessor's,
            # before it is the current generation: keep it for _retire to replay.
            self._early.append(item)
            return
        super()._handle(item)

    def _chain(
        self, generation: Generation, chained: tuple[_Target, Generation] | None
    ) -> tuple[_Target, Generation] | None:
        """Chain the current target to the draining ``generation`` (or nothing once stopping);
        return what is chained now. A successor that already started stays chained: the old
        run has returned, and the new target waits for the next switch-over."""
        if self._stopping:
            if chained is not None and generation.chain(None):
                return None
            return chained
        target = self._target
        if target is None:
            return chained
        successor = self._generation(target.config)
        if not generation.chain(successor):
            return chained
        self._target = None
        return target, successor
