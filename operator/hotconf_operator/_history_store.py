"""Keeps each enabled ConfigMap's revision history in the API, and reads its last good revision.

Created by ``__main__`` and used by ``_rollout.RolloutManager``: when a validated revision's
rollout reaches an outcome (complete, incomplete, rejected, halted), :meth:`HistoryStore.note`
writes it to the revision's ``ControllerRevision`` (``_history`` defines the record): created
the first time, renumbered when old content comes back, its outcome annotation updated when the
outcome changes (the reconciler completing an incomplete rollout), then the history is pruned
to its limit. :meth:`HistoryStore.last_good` reads the newest record every pod applied: what a
pod that starts during a halted rollout gets after an operator restart, when the operator's
memory no longer has it.

Cost: one list of the ConfigMap's records (metadata only) and one create or patch per new
revision, after its pushes; one merge patch per later change of its outcome. Never raises: the
history is for people and for restarts, and a failure to write it (logged) must not stop a
rollout.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from hotconf_operator._errors import KubeApiError
from hotconf_operator._history import (
    CHANGED_AT_ANNOTATION,
    CHANGED_BY_ANNOTATION,
    NUMBER_ANNOTATION,
    OUTCOME_ANNOTATION,
    HistoryEntry,
    entries_of,
    history_limit,
    last_good,
    record_body,
    record_name,
    selector,
    to_prune,
)
from hotconf_operator._kubeapi import KubeApi
from hotconf_operator._status import Phase, RolloutStatus
from hotconf_wire.protocol import ConfigMapRef, ConfigSnapshot

__all__ = ["HistoryStore"]

logger = logging.getLogger("hotconf_operator.history")

#: Phases worth a record: a rollout's outcome (not "rolling"; invalid revisions have no record).
_OUTCOMES = frozenset({Phase.COMPLETE, Phase.INCOMPLETE, Phase.REJECTED, Phase.HALTED})


class HistoryStore:
    """Writes ControllerRevisions for ConfigMaps; ``api`` None (unit tests) writes nothing."""

    def __init__(self, api: KubeApi | None, *, limit: int) -> None:
        self._api = api
        self._limit = limit
        #: What was last written per ConfigMap: (revision, phase), to skip unchanged outcomes.
        self._noted: dict[ConfigMapRef, tuple[str, Phase]] = {}

    def forget(self, ref: ConfigMapRef) -> None:
        self._noted.pop(ref, None)

    async def _entries(self, ref: ConfigMapRef, uid: str) -> list[HistoryEntry]:
        assert self._api is not None
        found = await self._api.list_controller_revisions(
            ref.namespace, label_selector=selector(uid), metadata_only=True
        )
        return entries_of(found)

    async def note(
        self,
        *,
        snapshot: ConfigSnapshot,
        uid: str,
        status: RolloutStatus,
        who: tuple[str, str],
        annotations: Mapping[str, str],
    ) -> None:
        """Record ``status`` as what the rollout of ``snapshot`` did (see the module docstring)."""
        ref = snapshot.ref
        if self._api is None or status.phase not in _OUTCOMES:
            return
        noted = self._noted.get(ref)
        if noted == (snapshot.revision, status.phase):
            return
        status = status.stamped()  # when it came to this outcome (history's AGE)
        try:
            if noted is not None and noted[0] == snapshot.revision:
                await self._set_outcome(ref, record_name(ref.name, snapshot.revision), status)
            else:
                await self._record(snapshot, uid, status, who, annotations)
        except KubeApiError as exc:
            logger.warning("cannot write the history of ConfigMap %s: %s", ref, exc)
            return
        self._noted[ref] = (snapshot.revision, status.phase)

    async def _set_outcome(
        self,
        ref: ConfigMapRef,
        name: str,
        status: RolloutStatus,
        number: int | None = None,
        who: tuple[str, str] = ("", ""),
    ) -> None:
        """Patch a record's outcome; with ``number``, content that came back: its new number
        and who wrote it back this time."""
        assert self._api is not None
        annotations = {OUTCOME_ANNOTATION: status.to_annotation()}
        patch: dict[str, object] = {"metadata": {"annotations": annotations}}
        if number is not None:
            annotations[NUMBER_ANNOTATION] = str(number)
            annotations[CHANGED_BY_ANNOTATION] = who[0]
            annotations[CHANGED_AT_ANNOTATION] = who[1]
            patch["revision"] = number
        await self._api.patch_controller_revision(ref.namespace, name, patch)

    async def _record(
        self,
        snapshot: ConfigSnapshot,
        uid: str,
        status: RolloutStatus,
        who: tuple[str, str],
        annotations: Mapping[str, str],
    ) -> None:
        assert self._api is not None
        ref = snapshot.ref
        entries = await self._entries(ref, uid)
        top = max((e.number for e in entries), default=0)
        mine = next((e for e in entries if e.revision == snapshot.revision), None)
        if mine is not None:
            # Seen before: the same rollout after a restart keeps its number; old content
            # that comes back (a rollback) takes the next one, as a StatefulSet's does.
            number = None if mine.number == top else top + 1
            if number is not None or not status.same_counts(mine.outcome):
                # (a restarted operator finding the outcome it wrote before writes nothing)
                await self._set_outcome(ref, mine.name, status, number, who)
        else:
            body = record_body(snapshot=snapshot, uid=uid, number=top + 1, who=who, outcome=status)
            try:
                await self._api.create_controller_revision(ref.namespace, body)
            except KubeApiError as exc:
                if exc.status != 409:
                    raise
                # The name is taken by a record of a ConfigMap of the same name that was
                # deleted (its uid is not ours) and not collected yet: it is garbage.
                await self._api.delete_controller_revision(ref.namespace, body["metadata"]["name"])
                await self._api.create_controller_revision(ref.namespace, body)
            logger.info(
                "history of %s: revision %d is %s (%s)",
                ref,
                top + 1,
                snapshot.revision[:19],
                status.phase,
            )
        limit, problem = history_limit(annotations, self._limit)
        if problem:
            logger.warning("ConfigMap %s: %s", ref, problem)
        entries = [e for e in entries if e.revision != snapshot.revision]
        entries.append(
            HistoryEntry(
                name=record_name(ref.name, snapshot.revision),
                number=top + 1 if mine is None or mine.number != top else top,
                revision=snapshot.revision,
                created="",
                changed_by=who[0],
                changed_at=who[1],
                outcome=status,
                content=None,
            )
        )
        for old in to_prune(entries, limit, current=snapshot.revision):
            try:
                await self._api.delete_controller_revision(ref.namespace, old.name)
            except KubeApiError as exc:
                if exc.status != 404:
                    raise

    async def last_good(
        self, ref: ConfigMapRef, uid: str, *, besides: str
    ) -> ConfigSnapshot | None:
        """The newest revision every pod applied, other than ``besides``, with its data; None
        if the history has none (or cannot be read: logged)."""
        if self._api is None:
            return None
        try:
            good = last_good(await self._entries(ref, uid), besides=besides)
            if good is None:
                return None
            full = entries_of(
                await self._api.list_controller_revisions(
                    ref.namespace, label_selector=selector(uid), name=good.name
                )
            )
        except KubeApiError as exc:
            logger.warning("cannot read the history of ConfigMap %s: %s", ref, exc)
            return None
        snapshot = full[0].snapshot(ref.namespace, ref.name) if full else None
        if snapshot is None:
            logger.warning("history record %s of ConfigMap %s cannot be read", good.name, ref)
        return snapshot
