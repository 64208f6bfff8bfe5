"""Atomic persistence of accepted configs in the state directory; survives ``kill -9``.

Called by :mod:`hotconf_sidecar._sidecar`: :meth:`Store.load` once at start-up, and
:meth:`Store.save` for every accepted push (new revision or higher sequence) before it is
relayed, so nothing the pod ran can be lost and no older sequence can be accepted after a
restart.

Layout: ``<state_dir>/configmaps/<namespace>_<name>.json`` holds the verified payload bytes
exactly as the operator signed them (``_`` cannot occur in either name). One file carries both
the config and the highest sequence, so they change together. A save writes a temporary file
and renames it over the old one: a process that dies at any point (``kill -9``) leaves the old
or the new file, whole, and the kernel's page cache keeps it for the restarted container.
With ``fsync=True`` (``--fsync true``) the file and the directory are also fsynced, which is
only needed when the state must outlive a power loss of the node (see ``docs/sidecar.md``).
Errors::

    StoreError (OSError is chained)   the state directory cannot be written or read
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from hotconf.envelope import EnvelopeError, Push, decode_payload
from hotconf.protocol import ConfigMapRef, ConfigSnapshot

__all__ = ["Held", "Store", "StoreError"]

logger: Final = logging.getLogger("hotconf_sidecar.store")


class StoreError(Exception):
    """The state directory cannot be used; the push is answered 500 and nothing changes."""


@dataclass(frozen=True, slots=True)
class Held:
    """What the sidecar holds for one ConfigMap: a snapshot and the highest sequence accepted."""

    snapshot: ConfigSnapshot
    sequence: int


class Store:
    """The state directory; see the module docstring."""

    def __init__(self, state_dir: Path, *, fsync: bool = False) -> None:
        self.dir = state_dir / "configmaps"
        self._fsync = fsync

    def _path(self, ref: ConfigMapRef) -> Path:
        return self.dir / f"{ref.namespace}_{ref.name}.json"

    def load(self) -> dict[ConfigMapRef, Held]:
        """Read every persisted config; set aside (never delete) files that do not parse."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            entries = sorted(self.dir.iterdir())
        except OSError as exc:
            raise StoreError(f"cannot use state directory {self.dir}: {exc}") from exc
        held: dict[ConfigMapRef, Held] = {}
        for path in entries:
            if path.name.startswith(".tmp-"):
                path.unlink(missing_ok=True)  # a save interrupted before its rename
                continue
            if path.suffix != ".json":
                continue
            try:
                push = decode_payload(path.read_bytes())
            except (OSError, EnvelopeError) as exc:
                logger.error("state file %s is unreadable (%s); moving it aside", path, exc)
                path.rename(path.with_suffix(".corrupt"))
                continue
            if path != self._path(push.snapshot.ref):
                logger.warning("state file %s names another ConfigMap; ignoring it", path)
                continue
            held[push.snapshot.ref] = Held(push.snapshot, push.sequence)
        return held

    def save(self, push: Push, payload: bytes) -> None:
        """Persist ``payload`` (the verified bytes of ``push``) atomically (and durably, with
        ``fsync``)."""
        path = self._path(push.snapshot.ref)
        tmp = path.with_name(f".tmp-{path.name}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                view = memoryview(payload)
                while view:
                    view = view[os.write(fd, view) :]
                if self._fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            if self._fsync:
                dir_fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
        except OSError as exc:
            raise StoreError(f"cannot persist {push.snapshot.ref} in {self.dir}: {exc}") from exc
