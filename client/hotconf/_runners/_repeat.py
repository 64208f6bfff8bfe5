"""Tasks for the common loop shape: one short step, repeated until ``draining`` is set.

Called by applications as ``hotconf.run(hotconf.repeat(step, interval=0.5))`` (thread and
process modes) or ``hotconf.run(hotconf.arepeat(step, interval=0.5), mode="asyncio")``. The
returned objects are picklable whenever ``step`` is, so they work in process mode. A step is
never interrupted: draining takes effect between steps, and the wait between steps ends at once
when ``draining`` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from hotconf._config import Config

__all__ = ["AsyncRepeat", "Repeat", "arepeat", "repeat"]


class _Draining(Protocol):
    def is_set(self) -> bool: ...
    def wait(self, timeout: float | None = None) -> bool: ...


@dataclass(frozen=True, slots=True)
class Repeat:
    """``step(config)`` repeated every ``interval`` seconds while not draining."""

    step: Callable[[Config], Any]
    interval: float = 0.0

    def __call__(self, config: Config, draining: _Draining) -> None:
        while not draining.is_set():
            self.step(config)
            if self.interval > 0:
                draining.wait(self.interval)


@dataclass(frozen=True, slots=True)
class AsyncRepeat:
    """``await step(config)`` repeated every ``interval`` seconds while not draining."""

    step: Callable[[Config], Awaitable[Any]]
    interval: float = 0.0

    async def __call__(self, config: Config, draining: asyncio.Event) -> None:
        while not draining.is_set():
            await self.step(config)
            if self.interval > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(draining.wait(), self.interval)
            else:
                await asyncio.sleep(0)


def repeat(step: Callable[[Config], Any], *, interval: float = 0.0) -> Repeat:
    """A thread/process task calling ``step(config)`` every ``interval`` s until draining."""
    if interval < 0:
        raise ValueError(f"interval must be >= 0 seconds, not {interval!r}")
    return Repeat(step, interval)


def arepeat(step: Callable[[Config], Awaitable[Any]], *, interval: float = 0.0) -> AsyncRepeat:
    """An asyncio task awaiting ``step(config)`` every ``interval`` s until draining."""
    if interval < 0:
        raise ValueError(f"interval must be >= 0 seconds, not {interval!r}")
    return AsyncRepeat(step, interval)
