"""Thread mode: each generation of the task runs in a daemon thread of this process.

Used by :func:`hotconf.run` with ``mode="thread"``. The cheapest switch-over, and the task shares
the process's memory, but Python cannot stop a thread from outside: a task that ignores
``draining`` past the drain deadline is reported as STUCK (and, with ``exit_on_stuck=True``, the
process exits so that Kubernetes restarts it). Task threads are daemon threads, so a stuck one
cannot keep the process alive at exit.

A switch-over hands the next generation to the running thread *before* it drains
(:meth:`Generation.chain`): the moment the old run returns, the same thread starts the new one,
and only then tells the supervisor, which ACKs. The path from the new config to the new run is
two thread wake-ups (connection -> supervisor -> task thread) instead of five, and no thread is
created; see docs/performance.md ("CPU per config in the worker").
"""

from __future__ import annotations

import itertools
import threading
import traceback
from collections.abc import Callable
from typing import Any, Final

from hotconf._config import Config
from hotconf._runners._base import Exited, now
from hotconf._runners._blocking import BlockingRunner, Generation

__all__ = ["ThreadRunner"]

_numbers: Final = itertools.count(1)


class _ThreadGeneration(Generation):
    def __init__(
        self, task: Callable[..., Any], config: Config, post: Callable[[object], None]
    ) -> None:
        super().__init__(config, post)
        self.task = task
        self.draining = threading.Event()
        self.started_at = 0.0
        self.thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._next: _ThreadGeneration | None = None  # chained, waiting for this run to end
        self._ended = False  # this run returned: nothing can be chained to it any more

    def _main(self) -> None:
        """The thread: run this generation, then each one chained to the previous run."""
        generation: _ThreadGeneration | None = self
        self.started_at = now()
        while generation is not None:
            error = None
            try:
                generation.task(generation.config, generation.draining)
            except BaseException:
                error = traceback.format_exc()
            with generation._lock:
                following, generation._next = generation._next, None
                generation._ended = True
                if following is not None:
                    following.thread = generation.thread
                    following.started_at = now()
                    generation.successor = following
            generation.post(Exited(generation, error))
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

    def chain(self, successor: Generation | None) -> bool:
        assert successor is None or isinstance(successor, _ThreadGeneration)
        with self._lock:
            if self._ended:
                return False
            self._next = successor
            return True

    def reap(self) -> None:
        if self.successor is None and self.thread is not None:
            self.thread.join()


class ThreadRunner(BlockingRunner):
    """Runs ``task(config, draining: threading.Event)`` in a thread per generation.

    ``ThreadRunner(task, **options).run()`` is ``hotconf.run(task, mode="thread", **options)``.
    """

    mode = "thread"
    direct_arrivals = True

    def _generation(self, config: Config) -> Generation:
        return _ThreadGeneration(self.task, config, self._inbox.put)
