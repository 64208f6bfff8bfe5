"""Giving freed heap memory back to the operating system after large pushes.

Called by :mod:`hotconf_sidecar._sidecar` after each push whose body was large. A 1 MiB config
passes through several buffers of a few MiB (body, payload, frame); glibc keeps such memory in
the process after it is freed (its mmap threshold grows to the largest block freed), so a
sidecar that once handled big configs would sit at several MiB more resident memory while idle.
Once no large push has arrived for a second, ``malloc_trim(0)`` returns that memory. On a C
library without ``malloc_trim`` (musl) this does nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final

__all__ = ["Trimmer"]

logger: Final = logging.getLogger("hotconf_sidecar.memory")

#: Bodies smaller than this leave nothing worth trimming behind.
LARGE: Final = 256 * 1024


def _load_trim() -> Callable[[], None] | None:
    import ctypes  # imported on the first large push only: an idle sidecar never pays for it

    try:
        libc = ctypes.CDLL(None)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int

    def run() -> None:
        trim(0)

    return run


class Trimmer:
    """Trims the heap ``delay`` seconds after the last large push."""

    def __init__(self, *, delay: float = 1.0) -> None:
        self.delay = delay
        self._handle: asyncio.TimerHandle | None = None
        self._trim: Callable[[], None] | None = None
        self._loaded = False

    def after(self, size: int) -> None:
        """Note a push of ``size`` bytes; (re)arm the trim if it was large."""
        if size < LARGE:
            return
        if not self._loaded:
            self._trim, self._loaded = _load_trim(), True
        if self._trim is None:
            return
        if self._handle is not None:
            self._handle.cancel()
        self._handle = asyncio.get_running_loop().call_later(self.delay, self._trim)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
