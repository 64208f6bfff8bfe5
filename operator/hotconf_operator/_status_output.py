"""What ``hotconf status`` prints: rows out of ConfigMaps, and the ``-o`` formats.

Pure: ``_status_command`` hands it the ConfigMaps it read (as the API serialises them) and the
output stream. :func:`rows` reads each one's ``hotconf.dev/status`` (``_status.parse_status``)
and the revision of its content now (``hotconf_wire.protocol.compute_revision``, as the
operator computes it), so ``--wait`` (``_status_wait``) can tell an old revision's status from
the current one's. Formats, as kubectl's ``-o``:

- ``table``: NAMESPACE NAME REVISION PHASE APPLIED HELD REJECTED PENDING TOTAL AGE MESSAGE
  (HELD: pods whose sidecar holds the revision with no application connected, not applied);
- ``wide``: the same plus POD (the one the message is about: it rejected, halted, is pending or
  held) and UPDATED (when the status was written), the message in full;
- ``json`` / ``yaml``: a list with every field of every row, ``pods`` included (each pod that
  has not applied it: its state, the revision its application runs, why);
- ``name``: ``configmap/NAME`` lines, as ``kubectl get -o name``.

``--no-headers`` drops the header line of ``table`` and ``wide`` (the others have none).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, TextIO

import yaml

from hotconf_operator._status import parse_status
from hotconf_wire.protocol import compute_revision

__all__ = ["COLUMNS", "FORMATS", "WIDE_COLUMNS", "rows", "write"]

COLUMNS = ("NAMESPACE", "NAME", "REVISION", "PHASE", "APPLIED", "HELD", "REJECTED", "PENDING",
           "TOTAL", "AGE", "MESSAGE")  # fmt: skip
WIDE_COLUMNS = (*COLUMNS[:-1], "POD", "UPDATED", "MESSAGE")
FORMATS = ("table", "wide", "json", "yaml", "name")


def _age(stamp: str, now: datetime.datetime) -> str:
    try:
        then = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return "-"
    seconds = int((now - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def _current_revision(item: dict[str, Any]) -> str:
    """The revision of the ConfigMap's content now; "" if its binaryData is not base64."""
    try:
        binary = {k: base64.b64decode(v) for k, v in (item.get("binaryData") or {}).items()}
    except (binascii.Error, TypeError):
        return ""
    return compute_revision(item.get("data") or {}, binary)


def rows(
    items: Sequence[dict[str, Any]], *, now: datetime.datetime | None = None
) -> list[dict[str, Any]]:
    """One row per ConfigMap, sorted by namespace and name; phase "unknown" if never rolled.

    ``revision`` is the one the status is about; ``current_revision`` the content's now."""
    now = now or datetime.datetime.now(datetime.UTC)
    out = []
    for item in items:
        meta = item.get("metadata") or {}
        status = parse_status(meta.get("annotations"))
        out.append(
            {
                "namespace": meta.get("namespace", ""),
                "name": meta.get("name", ""),
                "revision": status.revision if status else "",
                "current_revision": _current_revision(item),
                "phase": str(status.phase) if status else "unknown",
                "applied": status.applied if status else 0,
                "held": status.held if status else 0,
                "rejected": status.rejected if status else 0,
                "pending": status.pending if status else 0,
                "total": status.total if status else 0,
                "age": _age(status.time, now) if status and status.time else "-",
                "pod": status.pod if status else "",
                "message": status.message if status else "no status yet",
                "time": status.time if status else "",
                "pods": [asdict(line) for line in status.pods] if status else [],
                "unlisted": status.unlisted if status else 0,
                "converged_seconds": status.converged_seconds if status else None,
            }
        )
    return sorted(out, key=lambda r: (r["namespace"], r["name"]))


def _short(revision: str) -> str:
    return revision.split(":", 1)[-1][:12] if revision else "-"


def _cells(row: dict[str, Any], *, wide: bool) -> list[str]:
    counts = [str(row[k]) for k in ("applied", "held", "rejected", "pending", "total")]
    first = [row["namespace"], row["name"], _short(row["revision"]), row["phase"], *counts]
    message = row["message"].replace("\n", " ")
    if wide:
        return [*first, row["age"], row["pod"] or "-", row["time"] or "-", message]
    return [*first, row["age"], (f"{row['pod']}: " if row["pod"] else "") + message[:120]]


def _table(table: list[dict[str, Any]], out: TextIO, *, wide: bool, headers: bool) -> None:
    columns = WIDE_COLUMNS if wide else COLUMNS
    cells = [_cells(row, wide=wide) for row in table]
    lines = [list(columns), *cells] if headers else cells
    widths = [max(len(line[i]) for line in lines) for i in range(len(columns))] if lines else []
    for line in lines:
        out.write("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip() + "\n")


def write(table: list[dict[str, Any]], out: TextIO, *, output: str, headers: bool = True) -> None:
    """Print ``table`` (from :func:`rows`) as ``output`` (one of :data:`FORMATS`)."""
    if output == "json":
        json.dump(table, out, indent=2)
        out.write("\n")
    elif output == "yaml":
        yaml.safe_dump(table, out, sort_keys=False, default_flow_style=False)
    elif output == "name":
        out.writelines(f"configmap/{row['name']}\n" for row in table)
    elif output in ("table", "wide"):
        _table(table, out, wide=output == "wide", headers=headers)
    else:
        raise ValueError(f"unknown output format {output!r}: one of {', '.join(FORMATS)}")
