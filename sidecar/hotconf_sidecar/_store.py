"""Atomic persistence of accepted configs in the state directory; survives ``kill -9``.

Called by :mod:`hotconf_sidecar._sidecar`: :meth:`Store.load` once at start-up, and
:meth:`Store.save` for every accepted push (new revision or higher sequence) before it is
relayed, so nothing the pod ran can be lost and no older sequence can be accepted after a
restart.

Layout: one append-only log per ConfigMap, ``<state_dir>/configmaps/<namespace>_<name>.<first
sequence>.log`` (``_`` cannot occur in either name). Each save appends one record: the verified
payload bytes exactly as the operator signed them (two lines of JSON, whose only raw LF is the
one between them) and a LF, so the log is JSON lines, two per accepted push, and a record
carries both the config and its sequence. Appending never touches a byte already written: a
process that dies at any point (``kill -9``) leaves every earlier record whole and at worst the
last one cut short, which was never answered; :meth:`Store.load` takes the newest whole record
that parses and the next save starts a new log. A log that grows past :data:`ROLL_BYTES` is
replaced the same way: the new log is written whole, then the old one goes.

Why a log and not a file per sequence: on ext4 a new file per push (an inode allocated, another
freed) cost 40-80 us of kernel CPU per push, an append 3-6 us; a rename costs 0.15-0.5 ms, and
rewriting a file in place would have to truncate it (60 us) and could leave old and new bytes
mixed. The kernel's page cache keeps the logs for a restarted container. With ``fsync=True``
(``--fsync true``) each record is fsynced before the save returns, and the directory too when a
new log is created, which only matters when the state must outlive a power loss of the node
(see ``docs/sidecar.md``).

The sidecars before this layout wrote one ``<namespace>_<name>.<sequence>.json`` file per
ConfigMap holding one payload: :meth:`Store.load` still reads those, and the first save moves
the ConfigMap to a log. A file that does not parse as envelope v2 at all (cut short, or written
as envelope v1 by an older sidecar) is set aside as ``.corrupt``, never deleted; so is a log
whose last record was cut short, once a new log holds its newest record. Raises
:class:`~hotconf_sidecar._errors.StoreError` (the OSError chained) when the state directory
cannot be written or read.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from hotconf_sidecar._errors import StoreError
from hotconf_wire.envelope import Push, decode_payload
from hotconf_wire.errors import EnvelopeError
from hotconf_wire.protocol import ConfigMapRef, ConfigSnapshot

__all__ = ["ROLL_BYTES", "Held", "Store"]

logger: Final = logging.getLogger("hotconf_sidecar.store")

#: A log that would grow past this many bytes is replaced by a new one holding the new record
#: (about 180 pushes of a 1 KiB config; every push of a config over this size).
ROLL_BYTES: Final = 256 * 1024

_LOG: Final = ".log"
_SINGLE: Final = ".json"  # one payload per file: the layout of older sidecars


@dataclass(frozen=True, slots=True)
class Held:
    """What the sidecar holds for one ConfigMap: a snapshot and the highest sequence accepted.

    ``frame`` is the snapshot's frame body as the operator signed it, relayed as it is.
    """

    snapshot: ConfigSnapshot
    sequence: int
    frame: bytes = b""


@dataclass(slots=True)
class _File:
    """The file that holds a ConfigMap's newest record, and whether a save may append to it."""

    path: str
    size: int
    #: False for an older sidecar's single file, a log whose last record was cut short, and a
    #: log an append failed on: the next save starts a new log.
    appendable: bool
    #: Set aside (``.corrupt``), not deleted, when a new log replaces it: it ends in a cut record.
    cut: bool = False


def _records(content: bytes) -> tuple[list[bytes], bool]:
    """The whole records of a log (each payload without its final LF), and whether it ends in a
    cut one."""
    lines = content.split(b"\n")
    tail = lines.pop()  # b"" when the log ends with a LF
    cut = bool(tail) or len(lines) % 2 == 1
    return [lines[i] + b"\n" + lines[i + 1] for i in range(0, len(lines) - 1, 2)], cut


class Store:
    """The state directory; see the module docstring."""

    def __init__(self, state_dir: Path, *, fsync: bool = False) -> None:
        self.dir = state_dir / "configmaps"
        self._dir = str(self.dir)
        self._fsync = fsync
        # The file holding each ConfigMap's newest record. Paths as strings: a save builds one
        # at most, which costs ten times less than with ``pathlib``.
        self._files: dict[ConfigMapRef, _File] = {}

    def _path(self, ref: ConfigMapRef, sequence: int, suffix: str = _LOG) -> str:
        return f"{self._dir}/{ref.namespace}_{ref.name}.{sequence}{suffix}"

    def _read(self, path: Path) -> tuple[list[Push], bool]:
        """The pushes ``path`` holds, oldest first, and whether it ends in a cut record; raise
        ``EnvelopeError`` when it holds none whole."""
        content = path.read_bytes()
        if path.suffix == _SINGLE:
            return [decode_payload(content)], False
        records, cut = _records(content)
        pushes = []
        for record in records:
            try:
                pushes.append(decode_payload(record))
            except EnvelopeError:
                if pushes:  # damaged past here: what follows was never answered
                    return pushes, True
                raise
        if not pushes:
            raise EnvelopeError("malformed", "the log holds no whole record")
        return pushes, cut

    def load(self) -> dict[ConfigMapRef, Held]:
        """Read every persisted config, the newest per ConfigMap; set aside (never delete) files
        that do not parse; remove the older files of each ConfigMap."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            entries = sorted(self.dir.iterdir())
        except OSError as exc:
            raise StoreError(f"cannot use state directory {self.dir}: {exc}") from exc
        held: dict[ConfigMapRef, Held] = {}
        found: dict[ConfigMapRef, list[Path]] = {}
        for path in entries:
            if path.suffix not in (_LOG, _SINGLE):
                continue
            try:
                pushes, cut = self._read(path)
            except (OSError, EnvelopeError) as exc:
                logger.error("state file %s is unreadable (%s); moving it aside", path, exc)
                path.rename(path.with_suffix(".corrupt"))
                continue
            ref = pushes[0].snapshot.ref
            if str(path) != self._path(ref, pushes[0].sequence, path.suffix) or any(
                p.snapshot.ref != ref for p in pushes
            ):
                logger.warning("state file %s names another ConfigMap; ignoring it", path)
                continue
            if cut:
                logger.warning(
                    "state file %s ends in a record cut short (a save that never finished, "
                    "never answered); using the one before it",
                    path,
                )
            found.setdefault(ref, []).append(path)
            push = max(pushes, key=lambda p: p.sequence)
            newest = held.get(ref)
            if newest is None or push.sequence > newest.sequence:
                held[ref] = Held(push.snapshot, push.sequence, push.frame)
                appendable = path.suffix == _LOG and not cut
                self._files[ref] = _File(str(path), path.stat().st_size, appendable, cut)
        for ref, paths in found.items():
            for path in paths:
                if str(path) != self._files[ref].path:
                    path.unlink(missing_ok=True)  # superseded; a save removes it the same way
        return held

    def save(self, push: Push, payload: bytes) -> None:
        """Persist ``payload`` (the verified bytes of ``push``) atomically (and durably, with
        ``fsync``): appended to the ConfigMap's log, or written whole to a new log before the
        previous file goes."""
        ref = push.snapshot.ref
        size = len(payload) + 1
        current = self._files.get(ref)
        try:
            if current is not None and current.appendable and current.size + size <= ROLL_BYTES:
                self._append(current, payload)
            else:
                self._start(ref, push.sequence, payload, previous=current)
        except OSError as exc:
            raise StoreError(f"cannot persist {push.snapshot.ref} in {self.dir}: {exc}") from exc

    def _write(self, fd: int, payload: bytes) -> None:
        """Write one record, ``payload`` and a LF, with no copy of ``payload`` (1 MiB at most)."""
        done = os.writev(fd, (payload, b"\n"))
        if done <= len(payload):  # a short write: the rest, byte for byte
            view = memoryview(payload + b"\n")[done:]
            while view:
                view = view[os.write(fd, view) :]
        if self._fsync:
            os.fsync(fd)

    def _append(self, current: _File, payload: bytes) -> None:
        fd = os.open(current.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        try:
            self._write(fd, payload)
        except OSError:
            current.appendable = False  # it may end in part of this record now
            raise
        finally:
            os.close(fd)
        current.size += len(payload) + 1

    def _start(
        self, ref: ConfigMapRef, sequence: int, payload: bytes, *, previous: _File | None
    ) -> None:
        path = self._path(ref, sequence)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            self._write(fd, payload)
        finally:
            os.close(fd)
        if self._fsync:
            dir_fd = os.open(self._dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        self._files[ref] = _File(path, len(payload) + 1, appendable=True)
        if previous is None or previous.path == path:
            return
        try:
            if previous.cut:
                os.rename(previous.path, previous.path.rsplit(".", 1)[0] + ".corrupt")
            else:
                os.unlink(previous.path)
        except FileNotFoundError:
            pass
