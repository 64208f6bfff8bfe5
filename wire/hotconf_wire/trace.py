"""The rollout trace: an opt-in structured log of every hop a revision takes, with times.

Each hotconf process (the operator, each sidecar, each application using the library) that has
``HOTCONF_TRACE_FILE`` set (``--trace-file`` for the operator and the sidecar) appends one JSON
line per hop of each rollout to that file::

    {"t": 81234567890123, "proc": "sidecar", "pid": 4711, "hop": "sidecar.verified",
     "cm": "shop/web-config", "rev": "sha256:3f...", "pod": "shop/web-5d8f-x2"}

``t`` is ``time.monotonic_ns()``: on Linux, ``CLOCK_MONOTONIC`` is one clock for every process
of a machine, so the lines of all processes on one machine order and subtract (``bench/``
does, on one machine). Across machines only the differences within one process mean anything.
Lines name ConfigMaps, revisions and pods, never a config value.

The hops, in rollout order (``HOPS``): the operator has the watch event, has validated the
revision and signed one pod's push (which then goes to aiohttp: the next hop, the sidecar having
the push's body, covers the HTTP request on the wire); the sidecar has verified and persisted
it and has written the frame to its clients; the library has the frame, has drained the running
generation, has started the new one and has sent its ACK; the sidecar answers, the operator has
the answer, and has written the status.

Cost: a disabled trace is one attribute test per hop. An enabled one formats a short line and
makes one ``write(2)`` on a file opened with ``O_APPEND`` (a line is far below ``PIPE_BUF``, and
appends of one ``write`` each do not interleave), about 3-5 us per hop on the machines of
``docs/performance.md``: cheap enough to leave on in a benchmark, not free. OpenTelemetry was
not used: its SDK would put tens of MB into the sidecar, whose target is 45 MB resident.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from typing import Final

from hotconf_wire.settings import Setting

__all__ = ["DISABLED", "HOPS", "TRACE_FILE", "Tracer"]

#: Every hop a trace line may name, in the order a rollout passes them.
HOPS: Final = (
    "operator.event",
    "operator.validated",
    "operator.signed",
    "sidecar.received",
    "sidecar.verified",
    "sidecar.persisted",
    "sidecar.relayed",
    "client.received",
    "client.drained",
    "client.started",
    "client.acked",
    "sidecar.answered",
    "operator.answered",
    "operator.status",
)

TRACE_FILE: Final = Setting[str](
    flag="--trace-file",
    env="HOTCONF_TRACE_FILE",
    default="",
    parse=str,
    metavar="PATH",
    help=(
        "append one JSON line per rollout hop to this file, with monotonic times "
        "(docs/performance.md); off when empty"
    ),
    shown_default="off",
)


class Tracer:
    """Appends trace lines for one process; ``enabled`` is False without a file."""

    __slots__ = ("_fd", "_pid", "_proc", "enabled")

    def __init__(self, path: str | os.PathLike[str] | None, *, proc: str) -> None:
        self._proc = proc
        self._pid = os.getpid()
        self._fd: int | None = None
        if path:
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self.enabled = self._fd is not None

    def mark(self, hop: str, *, cm: object, rev: str, pod: object = "", at: float = 0.0) -> None:
        """Record that this process passed ``hop`` for revision ``rev`` of ConfigMap ``cm``
        (``namespace/name``) on pod ``pod`` (``namespace/name``; empty where the process
        implies it); ``at``: when, in ``time.monotonic()`` seconds, if not now."""
        if self._fd is None:
            return
        line = json.dumps(
            {
                "t": int(at * 1e9) if at else time.monotonic_ns(),
                "proc": self._proc,
                "pid": self._pid,
                "hop": hop,
                "cm": str(cm),
                "rev": rev,
                "pod": str(pod),
            },
            separators=(",", ":"),
        )
        try:
            os.write(self._fd, line.encode() + b"\n")
        except OSError:  # a full disk or a removed file ends the trace, never the rollout
            self.close()

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            self.enabled = False
            with contextlib.suppress(OSError):  # closed already, after a failed write
                os.close(fd)


#: A tracer that records nothing: the default of every part that takes one.
DISABLED: Final = Tracer(None, proc="")
