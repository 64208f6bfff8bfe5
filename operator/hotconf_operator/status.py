"""``hotconf status`` and the kubectl plugin ``kubectl hotconf status``: rollout state at a glance.

Console script ``kubectl-hotconf`` (kubectl finds it on PATH as the ``hotconf`` plugin); the
``hotconf`` CLI of the client library dispatches ``hotconf status ...`` here through
:func:`main` when the operator extra is installed. It lists ConfigMaps labelled
``hotconf.dev/enabled=true`` through the API (credentials as kopf finds them: in-cluster, or
``$KUBECONFIG``) and prints what the operator wrote in ``hotconf.dev/status``::

    NAMESPACE  NAME  REVISION      APPLIED  REJECTED  PENDING  TOTAL  AGE  MESSAGE

``-o json`` prints the same as a JSON list. Exit status: 0, or 1 when the API cannot be read.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from hotconf_operator._errors import KubeApiError
from hotconf_operator._kubeapi import KubeApi, login
from hotconf_operator._status import parse_status

__all__ = ["main", "rows"]

COLUMNS = ("NAMESPACE", "NAME", "REVISION", "PHASE", "APPLIED", "REJECTED", "PENDING", "TOTAL",
           "AGE", "MESSAGE")  # fmt: skip


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


def rows(
    items: Sequence[dict[str, Any]], *, now: datetime.datetime | None = None
) -> list[dict[str, Any]]:
    """One row per ConfigMap, sorted by namespace and name; ``status`` None if never rolled."""
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
                "phase": str(status.phase) if status else "unknown",
                "applied": status.applied if status else 0,
                "rejected": status.rejected if status else 0,
                "pending": status.pending if status else 0,
                "total": status.total if status else 0,
                "age": _age(status.time, now) if status and status.time else "-",
                "pod": status.pod if status else "",
                "message": status.message if status else "no status yet",
                "time": status.time if status else "",
            }
        )
    return sorted(out, key=lambda r: (r["namespace"], r["name"]))


def _short(revision: str) -> str:
    return revision.split(":", 1)[-1][:12] if revision else "-"


def print_table(table: list[dict[str, Any]], out: TextIO) -> None:
    cells = [
        [
            r["namespace"], r["name"], _short(r["revision"]), r["phase"], str(r["applied"]),
            str(r["rejected"]), str(r["pending"]), str(r["total"]), r["age"],
            (f"{r['pod']}: " if r["pod"] else "") + r["message"].replace("\n", " ")[:120],
        ]
        for r in table
    ]  # fmt: skip
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(COLUMNS)]
    for row in [list(COLUMNS), *cells]:
        out.write("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() + "\n")


async def _fetch(namespace: str | None, name: str | None) -> list[dict[str, Any]]:
    async with KubeApi(login()) as api:
        if name:
            if not namespace:
                namespace = login().default_namespace or "default"
            return [await api.get_configmap(namespace, name)]
        return await api.list_configmaps(
            namespace=namespace, label_selector="hotconf.dev/enabled=true"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """``[status] [-n NAMESPACE] [-o table|json] [CONFIGMAP]``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="kubectl hotconf",
        description="Show the rollout state of hotconf ConfigMaps (hotconf.dev/status).",
    )
    parser.add_argument("configmap", nargs="?", help="one ConfigMap (default: all enabled ones)")
    parser.add_argument("-n", "--namespace", help="namespace (default: all namespaces)")
    parser.add_argument("-o", "--output", choices=["table", "json"], default="table")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["status"]:  # `kubectl hotconf status ...` and `hotconf status ...`
        argv = argv[1:]
    args = parser.parse_args(argv)
    try:
        items = asyncio.run(_fetch(args.namespace, args.configmap))
    except KubeApiError as exc:
        print(f"hotconf status: {exc}", file=sys.stderr)
        return 1
    table = rows(items)
    if args.output == "json":
        json.dump(table, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print_table(table, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
