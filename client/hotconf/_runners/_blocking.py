"""The supervisor loop of the blocking runners (thread and process modes).

Subclassed by :class:`~hotconf._runners._thread.ThreadRunner` and
:class:`~hotconf._runners._process.ProcessRunner`, which supply a :class:`Generation` (one run of
the task on one config). ``run()`` blocks the calling thread and serves one inbox, a
``queue.SimpleQueue`` fed by the relay connection's thread (arriving snapshots), by the
generations (their end) and by signal handlers and ``close()`` (stop requests);
``SimpleQueue.put`` is reentrant, so a signal handler may call it.

The loop mirrors :class:`~hotconf._runners._asyncio.AsyncRunner` step for step: wait for a first
valid config; then, while not stopping, retire the running generation when there is a target
(drain, wait up to ``drain_timeout``, stop it by force or report it STUCK), launch the target
when nothing runs, else wait for messages. A switch-over builds exactly one generation: the one
``_launch`` starts. Thread mode extends the steps it overrides (``_deliver``, ``_next``,
``_handle``, ``_begin_drain``, ``_retire``) with its chained fast path; see :mod:`._thread`.
"""

from __future__ import annotations

import abc
import logging
import queue
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, Final, Unpack

from hotconf._config import Config
from hotconf._errors import RunnerError
from hotconf._runners._base import (
    Arrived,
    BaseRunner,
    GenerationBase,
    RunnerOptions,
    RunnerState,
    Stop,
    coalesce,
    now,
)
from hotconf_wire.protocol import ConfigSnapshot

__all__ = ["BlockingRunner", "Generation"]

logger: Final = logging.getLogger("hotconf")


class Generation(GenerationBase, abc.ABC):
    """One run of the task on one config, in a thread or a process."""

    def __init__(self, config: Config, post: Callable[[object], None]) -> None:
        super().__init__()
        self.config = config
        self.post = post
        #: When the run began (``now()``); set by the mode once it runs.
        self.started_at = 0.0

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


class BlockingRunner(BaseRunner):
    """Runs ``task(config, draining)`` and restarts it on each new revision; blocks in run()."""

    def __init__(self, task: Callable[..., Any], **options: Unpack[RunnerOptions]) -> None:
        super().__init__(task, options)
        self._inbox: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._gen: Generation | None = None
        self._done = threading.Event()
        self._runner_thread: threading.Thread | None = None

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
        try:
            self._connect(self._deliver)
            self._supervise()
        finally:
            self._stopping = True
            try:
                self._retire()
            finally:
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

    def _deliver(self, snapshot: ConfigSnapshot, received_at: float) -> None:
        """On the connection thread: a snapshot arrived; queue it for the supervisor."""
        self._inbox.put(Arrived(snapshot, received_at))

    def _next(self, timeout: float | None) -> list[object]:
        """What arrived within ``timeout``: every waiting item, snapshots coalesced per ConfigMap
        to the newest."""
        try:
            items = [self._inbox.get(timeout=timeout)]
        except queue.Empty:
            return []
        while True:
            try:
                items.append(self._inbox.get_nowait())
            except queue.Empty:
                break
        return coalesce(items)

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
        while not self._stopping:
            if self._target is not None:
                if self._gen is not None:
                    self._retire()
                else:
                    self._launch()
                continue
            for item in self._next(None):
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

    def _begin_drain(self, generation: Generation) -> float:
        """Set ``draining`` on the running generation; return the drain's deadline."""
        self._set_state(RunnerState.DRAINING)
        generation.drain()
        return now() + self.options.drain_timeout

    def _retire(self) -> None:
        """Drain the running generation, by force after the deadline; never leave two running."""
        generation = self._gen
        if generation is None:
            return
        if not generation.exited:
            deadline = self._begin_drain(generation)
            while not generation.exited and not self._hurry:
                remaining = deadline - now()
                if remaining <= 0:
                    break
                for item in self._next(remaining):
                    self._handle(item)
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
                if not generation.exited:
                    logger.error("hotconf: leaving the stuck task behind as the runner stops")
                    self._gen = None
                    return
        generation.reap()
        self._gen = None
        self._drained_at = now()
        if self._target is not None and not self._stopping:
            self._set_state(RunnerState.RESTARTING)
