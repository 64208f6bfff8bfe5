"""Children that die with their parent: the Linux parent-death signal, and a lifeline pipe.

Used by :mod:`hotconf._dev` (COMMAND gets SIGTERM if ``hotconf dev`` dies) and by process mode
(:mod:`hotconf._runners._process`: a task process is killed when the application's runner is
gone). Two mechanisms, because a process-mode generation is a *grandchild* of the application:
multiprocessing's fork server forks it, so its parent is the fork server, not the process that
supervises it.

* :func:`parent_death_signal`: Linux's ``PR_SET_PDEATHSIG`` (``prctl`` in libc, through ctypes)
  for a child started with :mod:`subprocess`. The kernel sends the signal when the parent
  *thread* exits, so it suits a parent that is one long-lived thread (``hotconf dev``'s event
  loop). Elsewhere (macOS, the BSDs) there is no such signal: it returns None and the child
  outlives a parent killed outright.
* :func:`follow_lifeline`: a daemon thread blocks reading a pipe whose write end only the
  supervising process holds; end of file means that process is gone (however it died, on any
  POSIX system) or let the child go, and the child kills itself. No race: a pipe whose writer
  died before the child started reads as end of file at once.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Final, Protocol

__all__ = ["follow_lifeline", "parent_death_signal"]

#: ``PR_SET_PDEATHSIG`` from <linux/prctl.h>.
_PR_SET_PDEATHSIG: Final = 1


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl: Callable[..., int] = libc.prctl
    except (OSError, AttributeError):
        return None
    return prctl


def parent_death_signal(sig: signal.Signals) -> Callable[[], None] | None:
    """A ``preexec_fn`` for :mod:`subprocess` that has the child get ``sig`` when the thread that
    started it exits; None where Linux's parent-death signal does not exist.

    libc is loaded here, before the fork, so the child only makes one call between fork and exec;
    the setting survives exec.
    """
    prctl = _prctl()
    if prctl is None:
        return None

    def set_it() -> None:
        prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)

    return set_it


class _Readable(Protocol):
    def recv_bytes(self) -> bytes: ...


def follow_lifeline(lifeline: _Readable, *, what: str) -> threading.Thread:
    """Kill this process (SIGKILL) when ``lifeline`` reaches end of file.

    ``lifeline`` is the reading end of a multiprocessing pipe; whatever arrives on it is ignored.
    ``what`` names the process in the one line written to stderr before it dies.
    """

    def follow() -> None:
        try:
            while True:
                lifeline.recv_bytes()
        except (EOFError, OSError):
            pass
        sys.stderr.write(f"hotconf: {what}: its supervising process is gone; ending it\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    thread = threading.Thread(target=follow, name="hotconf-lifeline", daemon=True)
    thread.start()
    return thread
