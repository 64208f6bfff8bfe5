"""Thread mode: each generation of the task runs in a daemon thread of this process.

Used by :func:`hotconf.run` with ``mode="thread"``. The cheapest switch-over (the new thread
starts in well under a millisecond) and the task shares the process's memory, but Python cannot
stop a thread from outside: a task that ignores ``draining`` past the drain deadline is reported
as STUCK (and, with ``exit_on_stuck=True``, the process exits so that Kubernetes restarts it).
Task threads are daemon threads, so a stuck one cannot keep the process alive at exit.
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
        self.thread = threading.Thread(
            target=self._main, name=f"hotconf-task-{next(_numbers)}", daemon=True
        )

    def _main(self) -> None:
        error = None
        self.started_at = now()
        try:
            self.task(self.config, self.draining)
        except BaseException:
            error = traceback.format_exc()
        self.post(Exited(self, error))

    def start(self) -> float:
        self.thread.start()  # returns once the thread runs
        return self.started_at or now()

    def drain(self) -> None:
        self.draining.set()

    def force(self, grace: float) -> bool:
        return False  # a thread cannot be stopped from outside

    def reap(self) -> None:
        self.thread.join()


class ThreadRunner(BlockingRunner):
    """Runs ``task(config, draining: threading.Event)`` in a thread per generation.

    ``ThreadRunner(task, **options).run()`` is ``hotconf.run(task, mode="thread", **options)``.
    """

    mode = "thread"

    def _generation(self, config: Config) -> Generation:
        return _ThreadGeneration(self.task, config, self._inbox.put)
