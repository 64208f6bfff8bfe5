"""``hotconf status --wait``: wait until the current revision of every selected ConfigMap is
applied everywhere, for CI pipelines.

Called by ``_status_command`` with a ``fetch`` that reads the ConfigMaps again (one list
request per poll) and returns their rows (``_status_output.rows``); no Kubernetes client here,
so the rules are tested without an API server. A ConfigMap is:

- **applied** when its ``hotconf.dev/status`` names the revision of its content now
  (``current_revision``: the operator may not have seen an edit yet) with phase ``complete``;
- **failed** when that status says ``halted``, ``rejected`` or ``invalid``: waiting longer
  changes nothing until someone edits the ConfigMap;
- **waiting** otherwise (no status yet, an older revision's status, ``rolling``, or
  ``incomplete``, which the operator's reconcile retries).

The wait ends at the first failure, when all are applied, or at the deadline. Progress goes to
``progress`` (stderr) as ``kubectl rollout status`` words it, one line whenever it changes.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

__all__ = ["WaitOutcome", "WaitResult", "parse_duration", "wait_applied"]

#: How often the ConfigMaps are read again: one list request a second is nothing to the API
#: server, and a CI job learns of the end within a second.
POLL_INTERVAL = 1.0

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Seconds in a duration as kubectl's ``--timeout`` takes it (Go's ``time.ParseDuration``:
    ``30s``, ``2m``, ``1h30m``, ``1.5h``, ``500ms``; ``0`` alone needs no unit). ValueError
    says what is wrong."""
    if text == "0":
        return 0.0
    position, seconds = 0, 0.0
    while position < len(text):
        match = _PART.match(text, position)
        if match is None:
            raise ValueError(
                f"invalid duration {text!r}: use a number with a unit, e.g. 30s, 2m, 1h30m"
            )
        seconds += float(match[1]) * _UNITS[match[2]]
        position = match.end()
    if not text:
        raise ValueError("invalid duration '': use a number with a unit, e.g. 30s, 2m, 1h30m")
    return seconds


class WaitOutcome(enum.IntEnum):
    """How the wait ended, valued as the exit status it gives (docs/operator.md)."""

    APPLIED = 0  # every selected ConfigMap's current revision is applied on every pod
    TIMED_OUT = 3  # the deadline passed first
    FAILED = 4  # a rollout halted, or was rejected, or the revision is invalid


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class WaitResult:
    outcome: WaitOutcome
    table: list[dict[str, Any]]  # the rows last read
    failed: list[dict[str, Any]]  # the rows that failed (FAILED only)


_FAILED_PHASES = {"halted", "rejected", "invalid"}


def _label(row: dict[str, Any]) -> str:
    return f'configmap "{row["namespace"]}/{row["name"]}"'


def _short(revision: str) -> str:
    return revision.split(":", 1)[-1][:12] if revision else "-"


def _state(row: dict[str, Any]) -> tuple[str, str]:
    """("applied" | "failed" | "waiting", the progress line)."""
    current = row["current_revision"]
    label = _label(row)
    if row["revision"] != current:
        return "waiting", (
            f"Waiting for {label} rollout to start: the operator has not reported revision"
            f" {_short(current)} yet..."
        )
    counts = f"{row['applied']} of {row['total']} pods applied revision {_short(current)}"
    if row.get("held"):
        counts += f", {row['held']} held by their sidecar with no application connected"
    if row["phase"] == "complete":
        return "applied", f"{label} successfully rolled out: {counts}"
    if row["phase"] in _FAILED_PHASES:
        who = f" by pod {row['pod']}" if row["pod"] else ""
        why = f": {row['message']}" if row["message"] else ""
        return "failed", f"{label} rollout {row['phase']}{who} at revision {_short(current)}{why}"
    return "waiting", f"Waiting for {label} rollout to finish ({row['phase']}): {counts}..."


def wait_applied(
    fetch: Callable[[], Sequence[dict[str, Any]]],
    *,
    timeout: float,
    progress: TextIO,
    interval: float = POLL_INTERVAL,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> WaitResult:
    """Poll ``fetch`` until every row is applied, one failed, or ``timeout`` seconds passed.

    ``fetch`` raises what it raises (an API error ends the wait). An empty selection never
    counts as applied: it waits, then times out, since the ConfigMap may be created later."""
    deadline = clock() + timeout
    said: dict[tuple[str, str], str] = {}
    while True:
        table = list(fetch())
        states = {(row["namespace"], row["name"]): _state(row) for row in table}
        for key, (_, line) in sorted(states.items()):
            if said.get(key) != line:
                progress.write(line + "\n")
                progress.flush()
                said[key] = line
        failed = [row for row in table if states[(row["namespace"], row["name"])][0] == "failed"]
        if failed:
            return WaitResult(outcome=WaitOutcome.FAILED, table=table, failed=failed)
        if table and all(state == "applied" for state, _ in states.values()):
            return WaitResult(outcome=WaitOutcome.APPLIED, table=table, failed=[])
        if not table and said.get(("", "")) is None:
            progress.write("Waiting for a ConfigMap labelled hotconf.dev/enabled=true...\n")
            said[("", "")] = "none"
        remaining = deadline - clock()
        if remaining <= 0:
            return WaitResult(outcome=WaitOutcome.TIMED_OUT, table=table, failed=[])
        sleep(min(interval, remaining))
