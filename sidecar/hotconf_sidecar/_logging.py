"""Structured logs: one JSON object per line on stderr; set up once by ``__main__``.

Fields: ``ts`` (Unix seconds), ``level``, ``logger``, ``msg``, and ``exc`` for tracebacks. Log
calls in the sidecar name ConfigMaps, revisions, sequences, clients and reasons, never a config
value; this module adds nothing of its own.
"""

from __future__ import annotations

import json
import logging
import sys

from hotconf_wire.settings import LogLevel

__all__ = ["setup_logging"]


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(level: LogLevel) -> None:
    """Send every log record of the process to stderr as JSON lines at ``level``."""
    # The JSON lines carry no thread, process or task names: do not collect them per record.
    # (Process-wide switches; the sidecar's process logs through this setup only.)
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.number)
