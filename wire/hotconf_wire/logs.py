"""One log line layout for every hotconf process, as JSON or as text, with the same field names.

Called once at start-up by the operator's and the sidecar's entry points (:func:`setup_logging`,
``--log-format`` / ``HOTCONF_LOG_FORMAT``). Every record becomes one line on stderr with the
fields ``ts``, ``level``, ``logger``, ``msg`` and, for a traceback, ``exc``:

- ``json``: one JSON object per line (``ts`` in Unix seconds), for log pipelines;
- ``text``: the same fields as logfmt, ``ts`` in ISO 8601 UTC, for people and ``grep``.

Log calls in hotconf name ConfigMaps, revisions, pods, clients and reasons, never a config
value; the formatters add nothing of their own.
"""

from __future__ import annotations

import datetime
import enum
import json
import logging
import sys
from typing import Any, Final

from hotconf_wire.settings import LogLevel, Setting, parse_log_level

__all__ = [
    "LOG_LEVEL",
    "JsonFormatter",
    "LogFormat",
    "TextFormatter",
    "log_format_setting",
    "parse_log_format",
    "setup_logging",
]


class LogFormat(enum.StrEnum):
    """A ``--log-format`` value."""

    JSON = "json"
    TEXT = "text"


def parse_log_format(text: str) -> LogFormat:
    """``json`` or ``text``, in any case."""
    try:
        return LogFormat(text.strip().lower())
    except ValueError:
        raise ValueError("not a log format; use json or text") from None


#: ``--log-level`` / ``HOTCONF_LOG_LEVEL``: declared here once for every component.
LOG_LEVEL: Final = Setting(
    flag="--log-level",
    env="HOTCONF_LOG_LEVEL",
    default=LogLevel.INFO,
    parse=parse_log_level,
    metavar="LEVEL",
    help="debug, info, warning or error, in any case",
)


def log_format_setting(default: LogFormat) -> Setting[LogFormat]:
    """``--log-format`` / ``HOTCONF_LOG_FORMAT``, with the component's own default."""
    return Setting(
        flag="--log-format",
        env="HOTCONF_LOG_FORMAT",
        default=default,
        parse=parse_log_format,
        metavar="FORMAT",
        help="json (one object per line) or text (logfmt): the same fields ts, level, logger, msg",
    )


def _fields(record: logging.LogRecord, formatter: logging.Formatter) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "ts": round(record.created, 6),
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    if record.exc_info:
        entry["exc"] = formatter.formatException(record.exc_info)
    return entry


class JsonFormatter(logging.Formatter):
    """``{"ts": 1796300000.123456, "level": "info", "logger": "...", "msg": "..."}``"""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record, self), ensure_ascii=False)


def _logfmt(value: str) -> str:
    if value and not any(c in value for c in ' ="\\\n') and value.isprintable():
        return value
    return json.dumps(value, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``ts=2026-12-03T16:00:00.123Z level=info logger=... msg="..."`` (logfmt)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = _fields(record, self)
        when = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        entry["ts"] = when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
        return " ".join(f"{key}={_logfmt(str(value))}" for key, value in entry.items())


def setup_logging(level: int, log_format: LogFormat) -> None:
    """Send every log record of the process to stderr, one line each, at ``level``."""
    # The lines carry no thread, process or task names: do not collect them per record.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format is LogFormat.JSON else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
