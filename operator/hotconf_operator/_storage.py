"""kopf storages that store nothing, so kopf never writes on a user's ConfigMap.

kopf's defaults keep handler progress and the last-handled configuration (a copy of the
object's essence: for a ConfigMap, all its data) in ``kopf.zalando.org/...`` annotations. That
breaks ConfigMaps above 256 KiB and writes where hotconf promises not to. hotconf registers
only event handlers and indices, which need neither; ``_handlers.configure`` installs these
two storages anyway, so that no future handler can make kopf write either.
"""

from __future__ import annotations

import copy
from typing import Any

import kopf

__all__ = ["NoDiffBaseStorage", "NoProgressStorage"]


class NoProgressStorage(kopf.ProgressStorage):
    """Progress of handlers is never persisted (hotconf keeps its own state in memory)."""

    def fetch(self, *, key: Any, body: Any) -> None:
        return None

    def store(self, *, key: Any, record: Any, body: Any, patch: Any) -> None:
        return None

    def purge(self, *, key: Any, body: Any, patch: Any) -> None:
        return None

    def touch(self, *, body: Any, patch: Any, value: str | None) -> None:
        return None

    def clear(self, *, essence: Any) -> Any:
        return copy.deepcopy(essence)


class NoDiffBaseStorage(kopf.DiffBaseStorage):
    """No last-handled-configuration copy; hotconf diffs by content revision instead."""

    def fetch(self, *, body: Any) -> None:
        return None

    def store(self, *, body: Any, patch: Any, essence: Any) -> None:
        return None
