"""``hotconf.run``: the one-call entry point that picks a runner by mode and blocks.

Called by applications; builds a :class:`ThreadRunner`, :class:`ProcessRunner` or
:class:`AsyncRunner` with the same keyword options (:class:`RunnerOptions`, declared once and
checked by type checkers through ``run``) and runs it to the end.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any, Literal, Unpack

from hotconf._errors import RunnerError
from hotconf._runners._asyncio import AsyncRunner
from hotconf._runners._base import RunnerOptions
from hotconf._runners._process import ProcessRunner
from hotconf._runners._thread import ThreadRunner

__all__ = ["Mode", "run"]

Mode = Literal["thread", "process", "asyncio"]


def _is_async(task: object) -> bool:
    return inspect.iscoroutinefunction(task) or inspect.iscoroutinefunction(
        getattr(task, "__call__", None)  # noqa: B004
    )


def run(
    task: Callable[..., Any], *, mode: Mode = "thread", **options: Unpack[RunnerOptions]
) -> None:
    """Run ``task(config, draining)`` on the current config and restart it on every new revision.

    Blocks until SIGTERM/SIGINT (when called from the main thread) and returns once the task
    drained. ``mode`` picks where each generation runs: ``"thread"`` (a thread; ``draining`` is a
    ``threading.Event``), ``"process"`` (a child process; a ``multiprocessing`` Event; the task
    must be picklable), ``"asyncio"`` (``task`` is a coroutine function; an ``asyncio.Event``).
    The options (``socket``, ``configmap``, ``validate``, ``drain_timeout``, ``kill_grace``,
    ``first_config_timeout``, ``exit_on_stuck``, ``on_event``, ``name``) are documented, with
    their defaults, on :class:`hotconf.RunnerOptions`.
    """
    if mode == "asyncio":
        asyncio.run(AsyncRunner(task, **options).arun())
        return
    if mode not in ("thread", "process"):
        raise RunnerError(f"mode must be 'thread', 'process' or 'asyncio', not {mode!r}")
    if _is_async(task):
        raise RunnerError(f"{task!r} is a coroutine function: run it with mode='asyncio'")
    runner = ThreadRunner(task, **options) if mode == "thread" else ProcessRunner(task, **options)
    runner.run()
