"""Revision history: what one ``ControllerRevision`` per validated revision of a ConfigMap holds.

Pure: no I/O. ``_history_store`` (the operator) writes and prunes these records, the
``hotconf history`` and ``hotconf rollback`` commands (``_history_command``) read them; both use
the shapes defined here, so the two cannot drift apart. StatefulSets and DaemonSets keep their
history the same way: a ``ControllerRevision`` (``apps/v1``) per revision, owned by the object it
is the history of, numbered by ``.revision``, with the content in ``.data``. The garbage
collector deletes the records with their ConfigMap (``ownerReferences``).

One record per content revision (``hotconf_wire.protocol.compute_revision``):

* name ``<configmap>-hotconf-<12 hex digits of the revision>``; labels
  :data:`CONFIGMAP_UID_LABEL` (the ConfigMap's uid: a ConfigMap deleted and created again starts
  a new history) and :data:`PART_OF_LABEL`;
* ``.revision``: 1, 2, 3 ... per ConfigMap; content applied again (a rollback, a revert in Git)
  takes the next number, as a StatefulSet's old revision does when it comes back;
* ``.data``: ``{"data": {...}, "binaryData": {...}}`` as the ConfigMap has them; above
  :data:`COMPRESS_ABOVE` bytes of JSON, ``{"gzip": "<base64 of the gzipped JSON>"}`` instead
  when that is smaller, so that a 1 MiB ConfigMap whose values JSON-escape to twice their size
  (quotes, newlines) still fits etcd's request limit (1.5 MiB by default); 1 MiB of random
  ``binaryData`` is stored plain, its base64 (1.33 MiB) fits as it is;
* annotations: :data:`REVISION_ANNOTATION` (the content revision), :data:`CHANGED_BY_ANNOTATION`
  (the field manager that last wrote ``data``/``binaryData``, from ``managedFields``: who, if
  known), :data:`CHANGED_AT_ANNOTATION` (when it wrote it), :data:`OUTCOME_ANNOTATION` (what the
  rollout did: the ``hotconf.dev/status`` object, phase, counts, the pod that rejected it and
  why; updated as it changes).

A record is written only for a revision that passed validation: an invalid revision has no
rollout and cannot be rolled back to. The number of records per ConfigMap is limited
(:func:`history_limit`: the ConfigMap's :data:`LIMIT_ANNOTATION`, else ``--history-limit``, 10);
:func:`to_prune` picks the oldest beyond it, never the last good one (:func:`last_good`).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hotconf_operator._status import Phase, RolloutStatus, parse_status
from hotconf_wire.protocol import ConfigSnapshot, compute_revision

__all__ = [
    "CHANGED_AT_ANNOTATION",
    "CHANGED_BY_ANNOTATION",
    "COMPRESS_ABOVE",
    "CONFIGMAP_UID_LABEL",
    "DEFAULT_HISTORY_LIMIT",
    "LIMIT_ANNOTATION",
    "NUMBER_ANNOTATION",
    "OUTCOME_ANNOTATION",
    "PART_OF_LABEL",
    "REVISION_ANNOTATION",
    "HistoryEntry",
    "changed_by",
    "entries_of",
    "entry_of",
    "history_limit",
    "last_good",
    "record_body",
    "record_name",
    "selector",
    "to_prune",
]

LIMIT_ANNOTATION = "hotconf.dev/history-limit"
DEFAULT_HISTORY_LIMIT = 10
CONFIGMAP_UID_LABEL = "hotconf.dev/configmap-uid"
PART_OF_LABEL = "app.kubernetes.io/part-of"
REVISION_ANNOTATION = "hotconf.dev/revision"
#: ``.revision`` mirrored, for lists of metadata only (``_history_store`` prunes from those).
NUMBER_ANNOTATION = "hotconf.dev/number"
OUTCOME_ANNOTATION = "hotconf.dev/outcome"
CHANGED_BY_ANNOTATION = "hotconf.dev/changed-by"
CHANGED_AT_ANNOTATION = "hotconf.dev/changed-at"
#: Bytes of JSON above which a record's data is stored gzipped (see the module docstring).
COMPRESS_ABOVE = 512 * 1024
#: A ControllerRevision name is a DNS subdomain: at most 253 characters.
_NAME_MAX = 253


def record_name(configmap: str, revision: str) -> str:
    """The record of ``revision`` of ConfigMap ``configmap`` (same namespace)."""
    digest = revision.split(":", 1)[-1][:12]
    suffix = f"-hotconf-{digest}"
    return configmap[: _NAME_MAX - len(suffix)].rstrip(".-") + suffix


def selector(uid: str) -> str:
    """The label selector of one ConfigMap's records."""
    return f"{CONFIGMAP_UID_LABEL}={uid}"


def changed_by(managed_fields: Any) -> tuple[str, str]:
    """(manager, time) of the last write of ``data`` or ``binaryData``, from ``managedFields``;
    ("", "") when no entry names them (a client that sends no field manager is still named by
    the API server after its user agent, e.g. ``kubectl-client-side-apply``)."""
    best: tuple[str, str] = ("", "")
    for entry in managed_fields if isinstance(managed_fields, list) else []:
        if not isinstance(entry, dict):
            continue
        fields = entry.get("fieldsV1")
        if not isinstance(fields, dict) or not ({"f:data", "f:binaryData"} & set(fields)):
            continue
        when = str(entry.get("time") or "")
        if when >= best[1]:
            best = (str(entry.get("manager") or ""), when)
    return best


def history_limit(annotations: Mapping[str, str], default: int) -> tuple[int, str]:
    """How many records to keep, and a problem with the annotation ("" if none)."""
    raw = annotations.get(LIMIT_ANNOTATION)
    if raw is None:
        return default, ""
    try:
        value = int(raw.strip())
    except ValueError:
        value = -1
    if value < 1:
        return default, (
            f"annotation {LIMIT_ANNOTATION} must be a whole number of records, at least 1; "
            f"keeping {default} (--history-limit)"
        )
    return value, ""


def _encode(snapshot: ConfigSnapshot) -> dict[str, Any]:
    content = {
        "data": dict(snapshot.data),
        "binaryData": {k: base64.b64encode(v).decode() for k, v in snapshot.binary_data.items()},
    }
    raw = json.dumps(content, separators=(",", ":")).encode()
    if len(raw) <= COMPRESS_ABOVE:
        return content
    packed = base64.b64encode(gzip.compress(raw, mtime=0)).decode()
    # Random binaryData does not compress, and base64 would make it a third bigger again.
    return {"gzip": packed} if len(packed) < len(raw) else content


def _decode(stored: Any) -> tuple[dict[str, str], dict[str, bytes]] | None:
    """The data and binaryData a record holds; None if it holds none that can be read."""
    if not isinstance(stored, dict):
        return None
    try:
        if "gzip" in stored:
            stored = json.loads(gzip.decompress(base64.b64decode(stored["gzip"])))
        data = {str(k): str(v) for k, v in (stored.get("data") or {}).items()}
        binary = {str(k): base64.b64decode(v) for k, v in (stored.get("binaryData") or {}).items()}
    except (binascii.Error, OSError, EOFError, ValueError, TypeError, AttributeError):
        return None
    return data, binary


def record_body(
    *,
    snapshot: ConfigSnapshot,
    uid: str,
    number: int,
    who: tuple[str, str],
    outcome: RolloutStatus | None,
) -> dict[str, Any]:
    """A new ControllerRevision for ``snapshot``, owned by the ConfigMap ``uid``.

    The owner reference is the ConfigMap's, with ``controller: true`` (the history belongs to
    it, as a StatefulSet's does) and no ``blockOwnerDeletion``: deleting a ConfigMap need not
    wait for its history, and with the admission plugin OwnerReferencesPermissionEnforcement
    setting it would take a right on ``configmaps/finalizers`` the operator does not need."""
    annotations = {
        REVISION_ANNOTATION: snapshot.revision,
        NUMBER_ANNOTATION: str(number),
        CHANGED_BY_ANNOTATION: who[0],
        CHANGED_AT_ANNOTATION: who[1],
    }
    if outcome is not None:
        annotations[OUTCOME_ANNOTATION] = outcome.to_annotation()
    return {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {
            "name": record_name(snapshot.name, snapshot.revision),
            "namespace": snapshot.namespace,
            "labels": {CONFIGMAP_UID_LABEL: uid, PART_OF_LABEL: "hotconf"},
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "name": snapshot.name,
                    "uid": uid,
                    "controller": True,
                }
            ],
        },
        "revision": number,
        "data": _encode(snapshot),
    }


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One record as read back: its number, content revision, who and when, what it did."""

    name: str
    number: int
    revision: str
    created: str  # the record's creationTimestamp (RFC 3339)
    changed_by: str
    changed_at: str
    outcome: RolloutStatus | None
    #: None: read as metadata only, or unreadable
    content: tuple[dict[str, str], dict[str, bytes]] | None

    def snapshot(self, namespace: str, configmap: str) -> ConfigSnapshot | None:
        """The record's content as a snapshot; None if it holds none, or not the content its
        revision says (a record changed by hand is never pushed)."""
        if self.content is None:
            return None
        data, binary = self.content
        if compute_revision(data, binary) != self.revision:
            return None
        return ConfigSnapshot(
            namespace=namespace,
            name=configmap,
            revision=self.revision,
            data=data,
            binary_data=binary,
        )


def entry_of(obj: Mapping[str, Any]) -> HistoryEntry | None:
    """A ControllerRevision read back as an entry; None if it is not a hotconf record."""
    meta = obj.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    revision = annotations.get(REVISION_ANNOTATION)
    if not revision:
        return None
    outcome = parse_status({"hotconf.dev/status": annotations.get(OUTCOME_ANNOTATION, "")})
    try:
        number = int(obj.get("revision") or annotations.get(NUMBER_ANNOTATION) or 0)
    except (TypeError, ValueError):
        number = 0
    return HistoryEntry(
        name=str(meta.get("name", "")),
        number=number,
        revision=str(revision),
        created=str(meta.get("creationTimestamp") or ""),
        changed_by=str(annotations.get(CHANGED_BY_ANNOTATION) or ""),
        changed_at=str(annotations.get(CHANGED_AT_ANNOTATION) or ""),
        outcome=outcome,
        content=_decode(obj.get("data")),
    )


def entries_of(objects: Iterable[Mapping[str, Any]]) -> list[HistoryEntry]:
    """Records, newest (highest number) first."""
    found = [e for e in (entry_of(o) for o in objects) if e is not None]
    return sorted(found, key=lambda e: e.number, reverse=True)


def last_good(entries: Sequence[HistoryEntry], *, besides: str = "") -> HistoryEntry | None:
    """The newest record every pod applied (outcome ``complete``), other than revision
    ``besides`` (the halted one)."""
    for entry in sorted(entries, key=lambda e: e.number, reverse=True):
        if entry.revision == besides:
            continue
        if entry.outcome is not None and entry.outcome.phase is Phase.COMPLETE:
            return entry
    return None


def to_prune(entries: Sequence[HistoryEntry], limit: int, *, current: str) -> list[HistoryEntry]:
    """The records beyond ``limit``, oldest first; the current revision's record and the last
    good one are kept even then (a halted rollout's pods fall back on the latter)."""
    keep = {current}
    good = last_good(entries, besides=current)
    if good is not None:
        keep.add(good.revision)
    budget = limit - sum(1 for e in entries if e.revision in keep)
    prune: list[HistoryEntry] = []
    for entry in sorted(entries, key=lambda e: e.number, reverse=True):
        if entry.revision in keep:
            continue
        if budget > 0:
            budget -= 1
        else:
            prune.append(entry)
    return list(reversed(prune))
