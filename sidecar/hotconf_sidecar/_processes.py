"""Finding the process to signal by name, among the processes this sidecar can see in ``/proc``.

Called by :class:`hotconf_sidecar._adapters.SignalAdapter` at every revision when it was given a
process name (``--notify-process``) rather than a pid file. In a pod with
``shareProcessNamespace: true`` the sidecar sees every process of the pod's containers and
nothing else, so a name such as ``nginx`` or ``my-server`` is enough to find the application.

A process matches ``NAME`` when its kernel name (``/proc/PID/comm``: the executable's, or for a
``#!`` script the script's, file name, cut to 15 bytes) is ``NAME`` (cut the same way), or when
the file name of its ``argv[0]`` is ``NAME``; the rule of ``pgrep -x NAME`` plus ``argv[0]``.
The sidecar's own process never matches. Of the matches, those whose parent is itself a match
are left out, so that a server with worker processes of the same name (nginx, gunicorn, php-fpm,
Apache) is signalled once, through its main process, which passes the reload on to its workers.
No match, or more than one main process, is an error naming what was found: signalling nothing,
or the wrong one of two, must be seen by the operator as a NACK rather than guessed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

__all__ = ["COMM_MAX", "ProcessLookupFailed", "find_process"]

#: ``/proc/PID/comm`` holds at most 15 bytes of the name (``TASK_COMM_LEN`` is 16 with the NUL).
COMM_MAX: Final = 15


class ProcessLookupFailed(LookupError):
    """No process, or more than one main process, has the name; the message says which."""

    def __init__(self, message: str, *, none: bool) -> None:
        super().__init__(message)
        #: True when no process had the name (it may still start), False for several.
        self.none = none


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:  # the process exited meanwhile, or it is not ours to read
        return None


def _parent(stat: bytes) -> int | None:
    # /proc/PID/stat is "pid (comm) state ppid ...", and comm may itself contain ") ".
    fields = stat[stat.rfind(b")") + 2 :].split()
    return int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None


def _matches(entry: Path, name: bytes) -> bool:
    comm = _read(entry / "comm")
    if comm is not None and comm.rstrip(b"\n") == name[:COMM_MAX]:
        return True
    cmdline = _read(entry / "cmdline")
    if not cmdline:
        return False  # a kernel thread or a zombie: no argv
    argv0 = cmdline.split(b"\0", 1)[0]
    return argv0.rsplit(b"/", 1)[-1] == name


def find_process(name: str, *, proc: Path = Path("/proc"), exclude: int | None = None) -> int:
    """The pid of the one main process named ``name``; raise :class:`ProcessLookupFailed`.

    ``exclude`` (default: this process) never matches; ``proc`` is the procfs to read.
    """
    own = os.getpid() if exclude is None else exclude
    wanted = os.fsencode(name)
    parents: dict[int, int | None] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == own:
            continue
        if _matches(entry, wanted):
            stat = _read(entry / "stat")
            parents[int(entry.name)] = _parent(stat) if stat is not None else None
    main = sorted(pid for pid, parent in parents.items() if parent not in parents)
    if len(main) == 1:
        return main[0]
    if not main:
        raise ProcessLookupFailed(
            f"no process named {name!r} is visible to the sidecar (the pod needs "
            f"shareProcessNamespace: true, and the name is the process's own, as ps -o comm "
            f"shows it)",
            none=True,
        )
    raise ProcessLookupFailed(
        f"{len(main)} processes named {name!r} (pids {', '.join(map(str, main))}), none the "
        f"parent of the others: give the name of exactly one process",
        none=False,
    )
