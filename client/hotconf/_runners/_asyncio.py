"""Asyncio mode: each generation is an asyncio task running ``await task(config, draining)``.

Used by :func:`hotconf.run` with ``mode="asyncio"`` (which calls ``asyncio.run(runner.arun())``)
and directly by applications that already run an event loop (``await AsyncRunner(task).arun()``).
It mirrors :mod:`._blocking` step for step: one inbox (an ``asyncio.Queue`` fed thread-safely by
the relay connection's thread), the same decisions from :class:`BaseRunner`. Past the drain
deadline the coroutine is cancelled; one that swallows the cancellation for ``kill_grace`` is
reported STUCK. Cancellation of ``arun()`` itself drains the task and is re-raised.

A coroutine that blocks the event loop (``time.sleep``, CPU-bound work) blocks the runner too;
use thread or process mode for such tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import signal
import threading
import traceback
from collections.abc import Awaitable, Callable
from typing import Any, Final, Unpack

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
    coalesce,
    now,
)

__all__ = ["AsyncRunner"]

logger: Final = logging.getLogger("hotconf")
_numbers: Final = itertools.count(1)


class _Generation(GenerationBase):
    def __init__(self, runner: AsyncRunner, config: Config) -> None:
        super().__init__()
        self.runner = runner
        self.config = config
        self.draining = asyncio.Event()
        self.began = asyncio.Event()
        self.started_at = 0.0
        self.task: asyncio.Task[None] | None = None

    async def _main(self) -> None:
        self.started_at = now()
        self.began.set()
        error = None
        try:
            await self.runner.task(self.config, self.draining)
        except asyncio.CancelledError:
            self.runner._post(Exited(self, None))
            raise
        except Exception:
            error = traceback.format_exc()
        self.runner._post(Exited(self, error))

    async def start(self) -> float:
        self.task = asyncio.create_task(self._main(), name=f"hotconf-task-{next(_numbers)}")
        began = asyncio.ensure_future(self.began.wait())
        await asyncio.wait([began, self.task], return_when=asyncio.FIRST_COMPLETED)
        began.cancel()
        return self.started_at or now()


class AsyncRunner(BaseRunner):
    """Runs ``await task(config, draining: asyncio.Event)`` and restarts it on new revisions."""

    mode = "asyncio"

    def __init__(
        self, task: Callable[..., Awaitable[Any]], **options: Unpack[RunnerOptions]
    ) -> None:
        if not inspect.iscoroutinefunction(task) and not inspect.iscoroutinefunction(
            getattr(task, "__call__", None)  # noqa: B004 - a callable object's async __call__
        ):
            raise RunnerError(
                f"mode='asyncio' runs a coroutine function (`async def task(config, draining)`), "
                f"not {task!r}; use mode='thread' or mode='process' for a plain function"
            )
        super().__init__(task, options)
        self._inbox: asyncio.Queue[object] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._gen: _Generation | None = None
        self._done: asyncio.Event | None = None

    # -- public lifecycle ---------------------------------------------------------------------

    async def arun(self) -> None:
        """The asyncio mirror of :meth:`BlockingRunner.run`; returns once stopped and drained."""
        if self._state is RunnerState.CREATED:  # else _begin() raises the lifecycle error
            self._loop = asyncio.get_running_loop()
            self._inbox = asyncio.Queue()
            self._done = asyncio.Event()
        self._begin()
        assert self._done is not None
        restore = self._install_signals()
        try:
            self._connect(lambda snapshot, at: self._post(Arrived(snapshot, at)))
            await self._supervise()
        finally:
            self._stopping = True
            try:
                await asyncio.shield(self._retire_now())
            finally:
                self._disconnect()
                restore()
                self._finish()
                self._done.set()

    async def _retire_now(self) -> None:
        await self._retire()

    async def aclose(self) -> None:
        """Drain the task and stop; waits until arun() has returned."""
        if self._state is RunnerState.CREATED:
            self._begin()
            self._finish()
            return
        self._post(Stop("aclose()"))
        if self._done is not None:
            await self._done.wait()

    async def __aenter__(self) -> AsyncRunner:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- the loop -------------------------------------------------------------------------------

    def _post(self, item: object) -> None:
        """Put ``item`` in the inbox from any thread (the connection's, a signal handler)."""
        loop, inbox = self._loop, self._inbox
        if loop is None or inbox is None:
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        try:
            if running is loop:
                inbox.put_nowait(item)
            else:
                loop.call_soon_threadsafe(inbox.put_nowait, item)
        except RuntimeError:
            pass  # the loop is closed: the runner has finished

    def _install_signals(self) -> Callable[[], None]:
        loop = self._loop
        if loop is None or threading.current_thread() is not threading.main_thread():
            return lambda: None
        installed = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._post, Stop(sig.name))
                installed.append(sig)

        def restore() -> None:
            for sig in installed:
                loop.remove_signal_handler(sig)

        return restore

    async def _next(self, wait: float | None) -> list[object]:
        inbox = self._inbox
        assert inbox is not None
        try:
            items = [await asyncio.wait_for(inbox.get(), wait)]
        except TimeoutError:
            return []
        while not inbox.empty():
            items.append(inbox.get_nowait())
        return coalesce(items)

    async def _supervise(self) -> None:
        deadline = now() + self.options.first_config_timeout
        while self._target is None:
            if self._stopping:
                return
            remaining = deadline - now()
            if remaining <= 0:
                raise self._first_config_timeout()
            for item in await self._next(remaining):
                self._handle(item)
        while not self._stopping:
            if self._target is not None:
                if self._gen is not None:
                    await self._retire()
                else:
                    await self._launch()
                continue
            for item in await self._next(None):
                self._handle(item)

    async def _launch(self) -> None:
        target, self._target = self._target, None
        assert target is not None
        generation = _Generation(self, target.config)
        started_at = await generation.start()
        self._gen = generation
        self._started(target, started_at)

    async def _retire(self) -> None:
        generation = self._gen
        if generation is None or generation.task is None:
            return
        if not generation.exited:
            self._set_state(RunnerState.DRAINING)
            generation.draining.set()
            deadline = now() + self.options.drain_timeout
            while not generation.exited and not self._hurry:
                remaining = deadline - now()
                if remaining <= 0:
                    break
                for item in await self._next(remaining):
                    self._handle(item)
        if not generation.exited:
            what = f"did not return within drain_timeout={self.options.drain_timeout:g}s"
            generation.task.cancel()
            done, _ = await asyncio.wait([generation.task], timeout=self.options.kill_grace)
            if done:
                logger.warning("hotconf: the asyncio task %s; cancelled it", what)
                generation.exited = True
            else:
                self._report_stuck(what + " and ignored its cancellation")
                while not generation.exited and not self._stopping:
                    for item in await self._next(None):
                        self._handle(item)
                if not generation.exited:
                    logger.error("hotconf: leaving the stuck task behind as the runner stops")
                    self._gen = None
                    return
        # Collect the task's outcome so asyncio never reports it as unretrieved.
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await generation.task
        self._gen = None
        self._drained_at = now()
        if self._target is not None and not self._stopping:
            self._set_state(RunnerState.RESTARTING)
