"""Process mode: each generation of the task runs in a child process, which can always be stopped.

Used by :func:`hotconf.run` with ``mode="process"``. Children come from multiprocessing's
``forkserver`` context: ``spawn`` starts a fresh interpreter per generation (hundreds of
milliseconds) and ``fork`` of a process that has threads (the relay connection is one) can
deadlock the child. The fork server is started once, when the runner starts, with the task's
module, hotconf and ``__main__`` loaded (:mod:`._preload`), so each child is a fork of a warm
process.

**A warm standby.** A revision does not wait for a fork: the runner keeps one child forked
ahead (:class:`_Standby`), blocked reading its config from a pipe. The first one is forked when
the runner starts, the next one as soon as a new generation runs and is ACKed, so forking (a few
milliseconds of CPU, more for a large main script) is off the switch-over's path; a switch-over
sends the config down the pipe and waits for the child's "started". The drain is as before: the
standby receives its config only once the old generation is gone, so two tasks never run at
once. A standby that died meanwhile is replaced by a fresh fork; an unused one is sent away
(its pipe closed) when the runner stops.

**No orphans.** A child's parent is the fork server, not the application, so Linux's
parent-death signal cannot tie it to the application (and the kernel sends that signal when the
parent *thread* exits: a runner started from a short-lived thread would lose its children).
Instead the writing end of each child's config pipe stays open in the runner for as long as the
child runs, and a thread in the child kills it (SIGKILL) when the pipe reaches end of file
(:func:`hotconf._parent_death.follow_lifeline`): when the application dies, however it dies, and
on any POSIX system. The fork server and multiprocessing's resource tracker then end by
themselves (each exits when the last process holding its pipe is gone). When the fork server
dies while the runner lives, the runner sees the generation as ended and closes its pipe, so the
child ends too; the next revision starts a new fork server.

Consequences for the application, also stated in errors:

* the task is pickled to reach the child: a module-level function (or a picklable callable
  object such as :func:`hotconf.repeat`'s), not a lambda or a closure;
* the script that calls ``hotconf.run`` is imported again by the fork server, so the call must
  sit under ``if __name__ == "__main__":``.

A child signals the parent through a pipe when the task begins (the ACK waits for it) and, if the
task raises, sends the traceback. **A quick end.** When the task returns and the child has nothing
else left to run (no other non-daemon thread, no multiprocessing child: what its normal exit
would wait for), it says "returned" and ends with ``os._exit`` at once, after flushing its
output: the runner counts the generation ended on that message, so the next one starts without
waiting for multiprocessing's exit path and the fork server's report of the exit status (about
1-2 ms); the process is reaped in the background, and before the runner returns. A child that
still has threads running ends the usual way, and the runner waits for it to be gone. A child
ignores SIGINT: Ctrl-C reaches the parent, which drains the child through ``draining``. Past
the drain deadline it gets SIGTERM, then SIGKILL after ``kill_grace``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from multiprocessing import forkserver, spawn
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event as MpEvent
from typing import Any, Final, Unpack

from hotconf._config import Config
from hotconf._errors import RunnerError
from hotconf._parent_death import follow_lifeline
from hotconf._runners._base import Exited, RunnerOptions, now
from hotconf._runners._blocking import BlockingRunner, Generation

__all__ = ["ProcessRunner"]

logger: Final = logging.getLogger("hotconf")

#: Seconds a new child gets to report that the task began (a cold fork server imports modules).
START_TIMEOUT: Final = 60.0
#: Seconds a standby that is not needed gets to exit before it is killed.
DISCARD_TIMEOUT: Final = 5.0

_numbers: Final = itertools.count(1)
#: The environment variable that carries the preparation of ``__main__``, as JSON, to the fork
#: server (read by :mod:`._preload`, which this module must not import: see there).
FORKSERVER_MAIN_ENV: Final = "HOTCONF_FORKSERVER_MAIN"
#: What a task process is prepared with that the fork server prepares once instead (._preload).
_MAIN_KEYS: Final = ("sys_argv", "init_main_from_path", "init_main_from_name")
#: Held while the environment carries the fork server's preparation (runners in several threads).
_warming: Final = threading.Lock()
_CONTEXT: Final = multiprocessing.get_context("forkserver")

_PICKLE_HINT: Final = (
    "mode='process' pickles the task to start it in a child process: use a module-level "
    "function (not a lambda, closure or bound method of an unpicklable object), and call "
    "hotconf.run under `if __name__ == '__main__':`"
)


def _child(
    task: Callable[..., Any],
    draining: MpEvent,
    control: multiprocessing.connection.Connection,
    status: multiprocessing.connection.Connection,
) -> None:
    """The child's entry point: wait for the config, say "started", run the task.

    ``control`` brings the config, then nothing: its end of file while waiting means the standby
    is not needed (the runner stopped), and afterwards that the runner's process is gone.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        fields = control.recv()
    except (EOFError, OSError):
        return
    namespace, name, revision, data, binary = fields
    config = Config(
        namespace=namespace, name=name, revision=revision, data=data, binary_data=binary
    )
    status.send(("started", now()))
    # After "started", off the switch-over's path: an end of file that came meanwhile stays.
    follow_lifeline(control, what=f"task process {os.getpid()}")
    try:
        task(config, draining)
    except BaseException:
        status.send(("failed", traceback.format_exc()))
        status.close()
        sys.exit(1)
    if _nothing_left_to_run():
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        status.send(("returned", now()))
        os._exit(0)  # nothing of the task can run after this message: the next one may start
    status.close()


def _nothing_left_to_run() -> bool:
    """Whether the child's normal exit would wait for nothing: no other non-daemon thread and
    no multiprocessing child of the task's (the follow_lifeline thread is a daemon)."""
    current = threading.current_thread()
    if any(t is not current and t.is_alive() and not t.daemon for t in threading.enumerate()):
        return False
    return not multiprocessing.active_children()


class _Standby:
    """A task process forked ahead of its revision, blocked reading its config from ``control``.

    Holds what the generation it becomes needs: the process, its ``draining`` Event, the pipe it
    reports on (``status``) and the writing end of ``control``, which stays open as long as the
    process runs (its lifeline, see :func:`hotconf._parent_death.follow_lifeline`).
    """

    def __init__(self, task: Callable[..., Any]) -> None:
        self.draining = _CONTEXT.Event()
        self.status, status_writer = _CONTEXT.Pipe(duplex=False)
        control_reader, self.control = _CONTEXT.Pipe(duplex=False)
        self.process: BaseProcess = _CONTEXT.Process(
            target=_child,
            args=(task, self.draining, control_reader, status_writer),
            name=f"hotconf-task-{next(_numbers)}",
        )
        try:
            self.process.start()
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            self.control.close()
            self.status.close()
            raise RunnerError(f"cannot start the task {task!r}: {exc}. {_PICKLE_HINT}") from exc
        except (OSError, EOFError) as exc:  # the fork server died or cannot fork
            self.control.close()
            self.status.close()
            raise RunnerError(
                f"cannot fork a process for the task {task!r} from multiprocessing's fork "
                f"server: {exc!r}"
            ) from exc
        finally:
            control_reader.close()
            status_writer.close()

    @property
    def alive(self) -> bool:
        """Whether the process still waits (False if it died before it was needed)."""
        return self.process.exitcode is None

    def discard(self) -> None:
        """Send the standby away unused: the end of its config pipe makes it exit."""
        self.control.close()
        self.process.join(DISCARD_TIMEOUT)
        if self.process.exitcode is None:
            self.process.kill()
            self.process.join()
        self.status.close()


class _ProcessGeneration(Generation):
    def __init__(
        self,
        task: Callable[..., Any],
        standby: _Standby | None,
        config: Config,
        post: Callable[[object], None],
    ) -> None:
        super().__init__(config, post)
        self.task = task
        self._standby = standby
        self.watcher: threading.Thread | None = None
        #: The child said "returned": the run is over, its process is being reaped.
        self.returned = False

    @property
    def standby(self) -> _Standby:
        """The process this generation runs in (set once :meth:`start` began)."""
        assert self._standby is not None
        return self._standby

    @property
    def process(self) -> BaseProcess:
        return self.standby.process

    @property
    def reader(self) -> multiprocessing.connection.Connection:
        return self.standby.status

    def start(self) -> float:
        standby = self._standby
        if standby is not None and not standby.alive:
            logger.warning(
                "hotconf: the standby task process %s exited with status %s before it was "
                "needed; forking another",
                standby.process.pid,
                standby.process.exitcode,
            )
            standby.discard()
            standby = None
        if standby is None:
            standby = _Standby(self.task)
        self._standby = standby
        c = self.config
        process = self.process
        message: Any = None
        try:
            self.standby.control.send(
                (c.namespace, c.name, c.revision, dict(c.data), dict(c.binary_data))
            )
        except OSError:  # the standby died before it was needed
            pass
        else:
            ready = multiprocessing.connection.wait([self.reader, process.sentinel], START_TIMEOUT)
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
            self.standby.control.close()
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
        error = None
        reader_open = True
        while reader_open and not self.returned:
            ready = multiprocessing.connection.wait([self.reader, process.sentinel])
            try:
                while self.reader.poll():
                    kind, payload = self.reader.recv()
                    if kind == "failed":
                        error = str(payload)
                    elif kind == "returned":
                        self.returned = True
            except (EOFError, OSError, ValueError):
                reader_open = False
            if process.sentinel in ready:
                break
        if self.returned:  # the child runs nothing of the task any more (see _child)
            self.post(Exited(self, None))
            process.join()
            self.reader.close()
            return
        process.join()
        self.reader.close()
        self.post(Exited(self, error))

    def drain(self) -> None:
        self.standby.draining.set()

    def force(self, grace: float) -> bool:
        process = self.process
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
        # After "returned" the watcher only reaps the process (its exit is a matter of
        # milliseconds): the runner joins it later, off the switch-over's path (_finish_reaping).
        if self.watcher is not None and not self.returned:
            self.watcher.join()
        self.standby.control.close()  # the process has ended: its lifeline is no longer needed

    def finish_reaping(self) -> None:
        """Wait until the process is reaped (after "returned", the watcher does it)."""
        if self.watcher is not None:
            self.watcher.join()


class ProcessRunner(BlockingRunner):
    """Runs ``task(config, draining: multiprocessing Event)`` in a child process per generation.

    ``ProcessRunner(task, **options).run()`` is ``hotconf.run(task, mode="process", **options)``.
    See the module docstring for what the task must be.
    """

    mode = "process"

    def __init__(self, task: Callable[..., Any], **options: Unpack[RunnerOptions]) -> None:
        super().__init__(task, **options)
        self._standby: _Standby | None = None
        #: Generations whose process may still be being reaped (they said "returned").
        self._reaping: list[_ProcessGeneration] = []

    def run(self) -> None:
        _warm_fork_server(self.task)
        try:
            super().run()
        finally:
            if self._standby is not None:
                self._standby.discard()
                self._standby = None
            self._finish_reaping()

    def _finish_reaping(self) -> None:
        reaping, self._reaping = self._reaping, []
        for generation in reaping:
            generation.finish_reaping()

    def _supervise(self) -> None:
        self._standby = _Standby(self.task)  # an unpicklable task fails here, at once
        super()._supervise()

    def _generation(self, config: Config) -> Generation:
        standby, self._standby = self._standby, None
        generation = _ProcessGeneration(self.task, standby, config, self._inbox.put)
        self._reaping.append(generation)
        return generation

    def _launch(self) -> None:
        """Launch the target on the standby, then (after the ACK: off the switch-over's path)
        reap the generations before it and fork the next standby."""
        super()._launch()
        current = self._gen
        done = [g for g in self._reaping if g is not current]
        self._reaping = [g for g in self._reaping if g is current]
        for generation in done:
            generation.finish_reaping()
        if self._standby is None and not self._stopping:
            try:
                self._standby = _Standby(self.task)
            except RunnerError as exc:
                logger.warning(
                    "hotconf: no standby task process (%s); the next revision forks its own", exc
                )


def _warm_fork_server(task: Callable[..., Any]) -> None:
    """Start the fork server now, with the task's module imported and ``__main__`` loaded (see
    :mod:`._preload`), so generations fork warm."""
    modules = ["hotconf._runners._process", "hotconf"]
    module = getattr(task, "__module__", None) or type(task).__module__
    if module and module != "__main__":
        modules.append(module)
    data = spawn.get_preparation_data("hotconf-fork-server")
    main = {k: data[k] for k in _MAIN_KEYS if k in data}
    if "init_main_from_path" in main or "init_main_from_name" in main:
        modules.append("hotconf._runners._preload")
    _CONTEXT.set_forkserver_preload(modules)
    with _warming:
        if main:
            # Read by the fork server this starts (if it is not running yet), and by it alone.
            os.environ[FORKSERVER_MAIN_ENV] = json.dumps({"parent": os.getpid(), **main})
        try:
            forkserver.ensure_running()
        except Exception as exc:  # pragma: no cover - depends on the platform
            raise RunnerError(f"cannot start multiprocessing's fork server: {exc}") from exc
        finally:
            os.environ.pop(FORKSERVER_MAIN_ENV, None)
