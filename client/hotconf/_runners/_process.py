"""Process mode: each generation of the task runs in a child process, which can always be stopped.

Used by :func:`hotconf.run` with ``mode="process"``. Children come from multiprocessing's
``forkserver`` context: ``spawn`` starts a fresh interpreter per generation (hundreds of
milliseconds) and ``fork`` of a process that has threads (the relay connection is one) can
deadlock the child. The fork server is started once, when the runner starts, with the task's
module, hotconf and ``__main__`` imported, so each generation is a fork of a warm process.

Consequences for the application, also stated in errors:

* the task is pickled to reach the child: a module-level function (or a picklable callable
  object such as :func:`hotconf.repeat`'s), not a lambda or a closure;
* the script that calls ``hotconf.run`` is imported again by the fork server, so the call must
  sit under ``if __name__ == "__main__":``.

A child signals the parent through a pipe when the task begins (the ACK waits for it) and, if the
task raises, sends the traceback. A child ignores SIGINT: Ctrl-C reaches the parent, which drains
the child through ``draining``. Past the drain deadline it gets SIGTERM, then SIGKILL after
``kill_grace``.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import multiprocessing.connection
import pickle
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from multiprocessing import forkserver
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event as MpEvent
from typing import Any, Final

from hotconf._config import Config
from hotconf._errors import RunnerError
from hotconf._runners._base import Exited, now
from hotconf._runners._blocking import BlockingRunner, Generation

__all__ = ["ProcessRunner"]

logger: Final = logging.getLogger("hotconf")

#: Seconds a new child gets to report that the task began (a cold fork server imports modules).
START_TIMEOUT: Final = 60.0

_numbers: Final = itertools.count(1)
_CONTEXT: Final = multiprocessing.get_context("forkserver")

_PICKLE_HINT: Final = (
    "mode='process' pickles the task to start it in a child process: use a module-level "
    "function (not a lambda, closure or bound method of an unpicklable object), and call "
    "hotconf.run under `if __name__ == '__main__':`"
)


def _child(
    task: Callable[..., Any],
    fields: tuple[str, str, str, dict[str, str], dict[str, bytes]],
    draining: MpEvent,
    pipe: multiprocessing.connection.Connection,
) -> None:
    """The child's entry point: rebuild the Config, say "started", run the task."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    namespace, name, revision, data, binary = fields
    config = Config(
        namespace=namespace, name=name, revision=revision, data=data, binary_data=binary
    )
    pipe.send(("started", now()))
    try:
        task(config, draining)
    except BaseException:
        pipe.send(("failed", traceback.format_exc()))
        pipe.close()
        sys.exit(1)
    pipe.close()


class _ProcessGeneration(Generation):
    def __init__(
        self, task: Callable[..., Any], config: Config, post: Callable[[object], None]
    ) -> None:
        super().__init__(config, post)
        self.task = task
        self.draining = _CONTEXT.Event()
        self.reader, self.writer = _CONTEXT.Pipe(duplex=False)
        self.process: BaseProcess | None = None
        self.watcher: threading.Thread | None = None

    def start(self) -> float:
        c = self.config
        fields = (c.namespace, c.name, c.revision, dict(c.data), dict(c.binary_data))
        process = _CONTEXT.Process(
            target=_child,
            args=(self.task, fields, self.draining, self.writer),
            name=f"hotconf-task-{next(_numbers)}",
        )
        try:
            process.start()
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            self.writer.close()
            self.reader.close()
            raise RunnerError(
                f"cannot start the task {self.task!r}: {exc}. {_PICKLE_HINT}"
            ) from exc
        finally:
            self.writer.close()
        self.process = process
        ready = multiprocessing.connection.wait([self.reader, process.sentinel], START_TIMEOUT)
        message: Any = None
        if self.reader in ready:
            try:
                message = self.reader.recv()
            except EOFError:
                message = None
        if not (isinstance(message, tuple) and message[0] == "started"):
            process.join(1.0)
            if process.exitcode is None:
                process.kill()
                process.join()
            self.reader.close()
            raise RunnerError(
                f"the task's process exited with status {process.exitcode} before the task "
                f"began (see its output above). {_PICKLE_HINT}"
            )
        started_at = float(message[1])
        self.watcher = threading.Thread(
            target=self._watch, name=f"{process.name}-watcher", daemon=True
        )
        self.watcher.start()
        return started_at

    def _watch(self) -> None:
        """Wait for the child to end, collecting a traceback it sends; then tell the runner."""
        process = self.process
        assert process is not None
        error = None
        reader_open = True
        while reader_open:
            ready = multiprocessing.connection.wait([self.reader, process.sentinel])
            try:
                while self.reader.poll():
                    kind, payload = self.reader.recv()
                    if kind == "failed":
                        error = str(payload)
            except (EOFError, OSError, ValueError):
                reader_open = False
            if process.sentinel in ready:
                break
        process.join()
        self.reader.close()
        self.post(Exited(self, error))

    def drain(self) -> None:
        self.draining.set()

    def force(self, grace: float) -> bool:
        process = self.process
        assert process is not None
        process.terminate()
        process.join(grace)
        if process.exitcode is None:
            logger.warning(
                "hotconf: the task's process %s ignored SIGTERM for %gs; killing it",
                process.pid,
                grace,
            )
            process.kill()
            process.join()
        return True

    def reap(self) -> None:
        if self.watcher is not None:
            self.watcher.join()


class ProcessRunner(BlockingRunner):
    """Runs ``task(config, draining: multiprocessing Event)`` in a child process per generation.

    ``ProcessRunner(task, **options).run()`` is ``hotconf.run(task, mode="process", **options)``.
    See the module docstring for what the task must be.
    """

    mode = "process"

    def run(self) -> None:
        _warm_fork_server(self.task)
        super().run()

    def _generation(self, config: Config) -> Generation:
        return _ProcessGeneration(self.task, config, self._inbox.put)


def _warm_fork_server(task: Callable[..., Any]) -> None:
    """Start the fork server now, with the task's module imported, so generations fork warm."""
    modules = ["hotconf._runners._process", "hotconf"]
    module = getattr(task, "__module__", None) or type(task).__module__
    if module and module != "__main__":
        modules.append(module)
    if getattr(sys.modules.get("__main__"), "__file__", None):
        modules.append("__main__")
    _CONTEXT.set_forkserver_preload(modules)
    try:
        forkserver.ensure_running()
    except Exception as exc:  # pragma: no cover - depends on the platform
        raise RunnerError(f"cannot start multiprocessing's fork server: {exc}") from exc
