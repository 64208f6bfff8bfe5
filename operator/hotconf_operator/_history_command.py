"""``hotconf history CONFIGMAP`` and ``hotconf rollback CONFIGMAP``: what ran, and putting it back.

Called by ``_kubectl_plugin`` (``kubectl hotconf history|rollback``) and by the ``hotconf`` CLI
of the client library through the ``hotconf.commands`` entry points. The cluster, credentials
and namespace are found as ``hotconf status`` finds them (``_kube_target``: the kubeconfig,
``--context``, ``-n``, or the pod's service account).

``history`` lists the ConfigMap's records (``_history``: one ``ControllerRevision`` per
validated revision, written by the operator), newest first::

    REVISION  CONTENT  AGE  OUTCOME  APPLIED  TOTAL  CHANGED-BY  MESSAGE

with ``*`` after the number of the record whose content the ConfigMap holds now; ``-o wide``
adds when the data was written and the record's name, ``-o json|yaml`` every field (never the
data), ``-o name`` the record names.

``rollback`` writes the data of one record back to the ConfigMap: ``--to N`` (a number from
``history``), else the newest record, other than the content now, that every pod applied
(outcome ``complete``). It is an ordinary change of the ConfigMap (a replace with its
``resourceVersion``, field manager ``hotconf-rollback``), so the operator validates it and rolls
it out as any other (staged if the ConfigMap says so), and tools that compare the cluster with
Git see it. Before writing, the record is validated as the operator would validate it now
(``_validation``: every key parsed by its extension, then the ConfigMap's current
``hotconf.dev/schema.*`` annotations): a record that no longer passes is refused with the
reasons, and nothing changes. ``--dry-run`` prints which keys it would add, change or remove
(names only, never values) and writes nothing.

Exit status: 0 done (or nothing to do), 1 an error (kubeconfig, API: 404, 403, 409 when the
ConfigMap changed meanwhile), 2 a bad command line, 4 refused (no such record, no earlier good
revision, or it fails validation now). This module stays within the ``kubectl`` extra, which
brings ``jsonschema`` for this validation (``.importlinter``, ``kubectl-plugin-is-light``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import datetime
import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

import urllib3
import yaml
from kubernetes import client as kube_client

from hotconf_operator._errors import ConfigInvalid, KubeApiError, RollbackRefused, SettingsError
from hotconf_operator._history import HistoryEntry, entries_of, selector
from hotconf_operator._kube_target import (
    Connection,
    Target,
    add_arguments,
    api_error,
    connection_of,
    resolve,
)
from hotconf_operator._validation import validate_configmap
from hotconf_wire.protocol import compute_revision

__all__ = ["FIELD_MANAGER", "history_main", "key_changes", "main", "pick", "rollback_main"]

#: The field manager of a rollback's write (``managedFields``; the history's CHANGED-BY).
FIELD_MANAGER = "hotconf-rollback"
EXIT_ERROR = 1
EXIT_REFUSED = 4
FORMATS = ("table", "wide", "json", "yaml", "name")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class HistoryOptions:
    """The command line of ``history`` and ``rollback`` (connection options: ``connection``)."""

    command: str  # "history" or "rollback"
    configmap: str
    output: str
    headers: bool
    to: int | None  # rollback --to
    dry_run: bool
    connection: Connection  # -n, --kubeconfig, --context, --request-timeout


def _parser(command: str, prog: str) -> argparse.ArgumentParser:
    if command == "history":
        parser = argparse.ArgumentParser(
            prog=prog,
            description="List the revisions of a hotconf ConfigMap that passed validation, newest "
            "first, with what each rollout did (kept by the operator as ControllerRevisions).",
            epilog="example: kubectl hotconf history -n shop web-config",
        )
    else:
        parser = argparse.ArgumentParser(
            prog=prog,
            description="Write the data of an earlier revision back to a hotconf ConfigMap; the "
            "operator then validates it and rolls it out like any change. Refused, with nothing "
            "changed, if that revision no longer passes validation.",
            epilog="examples: kubectl hotconf rollback -n shop web-config --dry-run; "
            "kubectl hotconf rollback -n shop web-config --to 3",
        )
    parser.add_argument("configmap", metavar="CONFIGMAP", help="the ConfigMap")
    parser.add_argument(
        "-n",
        "--namespace",
        metavar="NAMESPACE",
        help="its namespace (default: the context's, else 'default')",
    )
    if command == "history":
        parser.add_argument(
            "-o",
            "--output",
            choices=FORMATS,
            default="table",
            help="table (default), wide, json, yaml or name",
        )
        parser.add_argument(
            "--no-headers",
            action="store_true",
            help="leave out the header line of table and wide output",
        )
    else:
        parser.add_argument(
            "--to",
            metavar="REVISION",
            type=int,
            help="the revision number (from history) to put back (default: the "
            "newest one, other than the content now, that every pod applied)",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="print the keys it would add, change and remove; write nothing",
        )
    add_arguments(parser)
    return parser


def _parse(argv: Sequence[str], environ: Mapping[str, str]) -> HistoryOptions:
    command = argv[0]
    prog = f"kubectl hotconf {command}"
    if not os.path.basename(sys.argv[0]).startswith("kubectl-"):
        prog = f"hotconf {command}"
    parser = _parser(command, prog)
    args = parser.parse_args(argv[1:])
    return HistoryOptions(
        command=command,
        configmap=args.configmap,
        output=getattr(args, "output", "table"),
        headers=not getattr(args, "no_headers", False),
        to=getattr(args, "to", None),
        dry_run=getattr(args, "dry_run", False),
        connection=connection_of(args, environ, parser),
    )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Found:
    """The ConfigMap as read (a dict, as the API serialises it) and its history."""

    configmap: dict[str, Any]
    entries: list[HistoryEntry]  # newest first

    @property
    def current(self) -> str:
        binary = {
            k: base64.b64decode(v) for k, v in (self.configmap.get("binaryData") or {}).items()
        }
        return compute_revision(self.configmap.get("data") or {}, binary)


def _read(options: HistoryOptions, target: Target, namespace: str) -> Found:
    timeout = options.connection.request_timeout
    name = options.configmap
    with kube_client.ApiClient(target.configuration) as client:
        core = kube_client.CoreV1Api(client)
        apps = kube_client.AppsV1Api(client)
        what = f"get configmap {name!r} in namespace {namespace!r}"
        try:
            configmap = client.sanitize_for_serialization(
                core.read_namespaced_config_map(name, namespace, _request_timeout=timeout)
            )
            what = f"list controllerrevisions (apps) in namespace {namespace!r}"
            uid = configmap["metadata"]["uid"]
            found = apps.list_namespaced_controller_revision(
                namespace, label_selector=selector(uid), _request_timeout=timeout
            )
            items = client.sanitize_for_serialization(found.items or [])
        except (kube_client.ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise api_error(exc, what=what, target=target) from exc
    return Found(configmap=configmap, entries=entries_of(items))


# -- history ---------------------------------------------------------------------------------


def _age(stamp: str, now: datetime.datetime) -> str:
    try:
        then = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return "-"
    seconds = max(int((now - then).total_seconds()), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def rows(found: Found, *, now: datetime.datetime | None = None) -> list[dict[str, Any]]:
    """One row per record, newest first; never the data."""
    now = now or datetime.datetime.now(datetime.UTC)
    current = found.current
    out = []
    for entry in found.entries:
        outcome = entry.outcome
        when = outcome.time if outcome is not None and outcome.time else entry.created
        out.append(
            {
                "revision": entry.number,
                "current": entry.revision == current,
                "content": entry.revision,
                "age": _age(when, now) if when else "-",
                "outcome": str(outcome.phase) if outcome is not None else "unknown",
                "applied": outcome.applied if outcome is not None else 0,
                "rejected": outcome.rejected if outcome is not None else 0,
                "pending": outcome.pending if outcome is not None else 0,
                "total": outcome.total if outcome is not None else 0,
                "pod": outcome.pod if outcome is not None else "",
                "message": outcome.message if outcome is not None else "",
                "changed_by": entry.changed_by,
                "changed_at": entry.changed_at,
                "time": when,
                "name": entry.name,
            }
        )
    return out


def write_history(table: list[dict[str, Any]], out: TextIO, *, output: str, headers: bool) -> None:
    if output == "json":
        json.dump(table, out, indent=2)
        out.write("\n")
        return
    if output == "yaml":
        yaml.safe_dump(table, out, sort_keys=False, default_flow_style=False)
        return
    if output == "name":
        out.writelines(f"controllerrevision.apps/{row['name']}\n" for row in table)
        return
    wide = output == "wide"
    columns = ["REVISION", "CONTENT", "AGE", "OUTCOME", "APPLIED", "TOTAL", "CHANGED-BY"]
    columns += ["CHANGED-AT", "RECORD", "MESSAGE"] if wide else ["MESSAGE"]
    lines = [columns] if headers else []
    for row in table:
        message = (f"{row['pod']}: " if row["pod"] else "") + row["message"].replace("\n", " ")
        cells = [
            f"{row['revision']}{'*' if row['current'] else ''}",
            row["content"].split(":", 1)[-1][:12],
            row["age"],
            row["outcome"],
            str(row["applied"]),
            str(row["total"]),
            row["changed_by"] or "-",
        ]
        if wide:
            cells += [row["changed_at"] or "-", row["name"], message]
        else:
            cells.append(message[:100])
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(columns))] if lines else []
    for line in lines:
        out.write("  ".join(c.ljust(widths[i]) for i, c in enumerate(line)).rstrip() + "\n")


# -- rollback --------------------------------------------------------------------------------


def pick(found: Found, to: int | None) -> HistoryEntry:
    """The record to put back (raises :class:`RollbackRefused`)."""
    name = found.configmap["metadata"]["name"]
    if not found.entries:
        raise RollbackRefused(
            f"configmap {name!r} has no history: the operator records each revision "
            "that passes validation (hotconf.dev/enabled=true)"
        )
    if to is not None:
        for entry in found.entries:
            if entry.number == to:
                return entry
        known = ", ".join(str(e.number) for e in found.entries)
        raise RollbackRefused(f"configmap {name!r} has no revision {to}; its history has {known}")
    current = found.current
    for entry in found.entries:
        if entry.revision != current and entry.outcome is not None:
            if entry.outcome.phase == "complete":
                return entry
    raise RollbackRefused(
        f"configmap {name!r} has no earlier revision that every pod applied; "
        "pick one with --to (see: hotconf history)"
    )


def key_changes(
    old: Mapping[str, Any], new: Mapping[str, Any]
) -> tuple[list[str], list[str], list[str]]:
    """(added, changed, removed) key names going from ``old`` to ``new``."""
    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new))
    changed = sorted(k for k in set(old) & set(new) if old[k] != new[k])
    return added, changed, removed


async def _validate(
    entry: HistoryEntry, found: Found, options: HistoryOptions, target: Target
) -> None:
    """Validate the record's data with the ConfigMap's schema annotations now (ConfigInvalid)."""
    meta = found.configmap["metadata"]
    namespace = meta["namespace"]
    assert entry.content is not None

    def read_key(name: str, key: str) -> str:
        with kube_client.ApiClient(target.configuration) as client:
            try:
                cm = kube_client.CoreV1Api(client).read_namespaced_config_map(
                    name, namespace, _request_timeout=options.connection.request_timeout
                )
            except kube_client.ApiException as exc:
                raise KubeApiError(str(exc.reason), status=int(exc.status or 0)) from exc
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise KubeApiError(str(exc)) from exc
        return str((cm.data or {})[key])

    async def fetch(namespace_: str, name: str, key: str) -> str:
        return await asyncio.to_thread(read_key, name, key)

    await validate_configmap(
        namespace=namespace,
        name=meta["name"],
        data=entry.content[0],
        annotations=meta.get("annotations") or {},
        fetch_schema=fetch,
    )


def _rollback(options: HistoryOptions, target: Target, found: Found, out: TextIO) -> int:
    meta = found.configmap["metadata"]
    where = f'configmap "{meta["namespace"]}/{meta["name"]}"'
    entry = pick(found, options.to)
    snapshot = entry.snapshot(meta["namespace"], meta["name"])
    if snapshot is None:
        raise RollbackRefused(
            f"revision {entry.number} ({entry.name}) holds no data that matches its "
            f"content revision {entry.revision[:19]}; it cannot be put back"
        )
    if entry.revision == found.current:
        out.write(
            f"{where} already holds revision {entry.number} ({entry.revision[:19]}); "
            "nothing to do\n"
        )
        return 0
    try:
        asyncio.run(_validate(entry, found, options, target))
    except ConfigInvalid as exc:
        raise RollbackRefused(
            f"revision {entry.number} no longer passes validation, nothing changed: {exc}"
        ) from exc
    new_binary = {k: base64.b64encode(v).decode() for k, v in snapshot.binary_data.items()}
    old = {
        **(found.configmap.get("data") or {}),
        **{f"{k} (binary)": v for k, v in (found.configmap.get("binaryData") or {}).items()},
    }
    new = {**dict(snapshot.data), **{f"{k} (binary)": v for k, v in new_binary.items()}}
    added, changed, removed = key_changes(old, new)
    verb = "would roll back" if options.dry_run else "rolled back"
    outcome = entry.outcome
    said = "outcome unknown"
    if outcome is not None:
        said = f"{outcome.phase} {outcome.applied}/{outcome.total} pods"
        if outcome.time:
            said += f", {_age(outcome.time, datetime.datetime.now(datetime.UTC))} ago"
    out.write(f"{where} {verb} to revision {entry.number} ({entry.revision[:19]}, {said}):\n")
    for sign, keys in (("+", added), ("~", changed), ("-", removed)):
        out.writelines(f"  {sign} {key}\n" for key in keys)
    unchanged = len(set(old) & set(new)) - len(changed)
    out.write(
        f"  {len(added)} added, {len(changed)} changed, {len(removed)} removed, "
        f"{unchanged} unchanged (key names only)\n"
    )
    if options.dry_run:
        return 0
    body: Any = dict(found.configmap)
    body["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
    body["data"] = dict(snapshot.data) or None
    body["binaryData"] = new_binary or None
    namespace, name = meta["namespace"], meta["name"]
    with kube_client.ApiClient(target.configuration) as client:
        try:
            kube_client.CoreV1Api(client).replace_namespaced_config_map(
                name,
                namespace,
                body,
                field_manager=FIELD_MANAGER,
                _request_timeout=options.connection.request_timeout,
            )
        except (kube_client.ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            error = api_error(
                exc, what=f"update configmap {name!r} in namespace {namespace!r}", target=target
            )
            if error.status == 409:
                raise KubeApiError(
                    f"{where} changed since it was read; nothing was written, "
                    "run the rollback again",
                    status=409,
                ) from exc
            raise error from exc
    out.write(
        f"the operator validates and rolls it out now; follow it with: kubectl hotconf "
        f"status -n {namespace} --wait {name}\n"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``history|rollback CONFIGMAP [options]`` (``--help`` lists them); the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    options = _parse(arguments, os.environ)
    try:
        target = resolve(options.connection)
        namespace = options.connection.namespace or target.namespace
        found = _read(options, target, namespace)
        if options.command == "history":
            write_history(rows(found), sys.stdout, output=options.output, headers=options.headers)
            return 0
        return _rollback(options, target, found, sys.stdout)
    except RollbackRefused as exc:
        print(f"hotconf {options.command}: refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except (SettingsError, KubeApiError) as exc:
        print(f"hotconf {options.command}: {exc}", file=sys.stderr)
        return EXIT_ERROR


def history_main(argv: Sequence[str]) -> int:
    """``hotconf history ...``: the ``hotconf`` CLI passes the arguments after the word."""
    return main(["history", *argv])


def rollback_main(argv: Sequence[str]) -> int:
    """``hotconf rollback ...``: the ``hotconf`` CLI passes the arguments after the word."""
    return main(["rollback", *argv])
