"""The operator keys this sidecar trusts, and their persistence in the state directory.

Created by :mod:`hotconf_sidecar.__main__` with the keys of ``HOTCONF_OPERATOR_PUBLIC_KEY`` (the
initial trust) and the state directory; :mod:`._verify` picks a key from it by the push's
``keyid`` (or tries each), and :mod:`._sidecar` calls :meth:`Trust.adopt` for each accepted push
that announces a ``trust`` set. That is how a key rotation reaches running pods without a
restart (``docs/operator.md``, "Rotating the signing key").

Layout: ``<state_dir>/trust.json`` is ``{"sequence": N, "keys": [<raw key, base64>, ...]}``,
written to a temporary file and renamed over the old one (a rotation writes it a few times in
a pod's life, so the rename's cost does not matter), so a ``kill -9`` leaves the old set or the
new one, never a mix. A persisted set wins over the injected keys at start-up: those are what
the pod was admitted with, possibly before a rotation. ``sequence`` is the push that announced
the set: an announcement from an older push (a replay, or a push overtaken in flight) changes
nothing, so it cannot bring back a key that was removed. A file that does not parse is set aside
(``trust.corrupt``) and the injected keys are used. Raises
:class:`~hotconf_sidecar._errors.StoreError` when the file cannot be written.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from nacl.signing import VerifyKey

from hotconf_sidecar._errors import StoreError
from hotconf_wire.envelope import key_id

__all__ = ["Trust"]

logger: Final = logging.getLogger("hotconf_sidecar.trust")


class Trust:
    """The trusted keys by id, the sequence that announced them, and where they persist.

    Keys are the raw 32 bytes of each Ed25519 public key; ``keys`` holds them as PyNaCl
    verifiers, by key id."""

    def __init__(self, initial: Iterable[bytes], *, state_dir: Path | None = None):
        self.keys: dict[str, VerifyKey] = {key_id(raw): VerifyKey(raw) for raw in initial}
        if not self.keys:
            raise ValueError("a sidecar needs at least one operator key to trust")
        self.sequence = 0
        self._path = state_dir / "trust.json" if state_dir is not None else None

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(sorted(self.keys))

    def load(self) -> None:
        """Take the persisted set, if there is one that parses (see the module docstring)."""
        if self._path is None:
            return
        try:
            text = self._path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StoreError(f"cannot read {self._path}: {exc}") from exc
        try:
            obj = json.loads(text)
            sequence = obj["sequence"]
            raws = [base64.b64decode(k, validate=True) for k in obj["keys"]]
            if not isinstance(sequence, int) or not raws or any(len(r) != 32 for r in raws):
                raise ValueError("not a sequence and a non-empty list of 32-byte keys")
        except (ValueError, TypeError, KeyError, binascii.Error, RecursionError) as exc:
            logger.error(
                "trust file %s is unreadable (%s); moving it aside and trusting the injected "
                "key(s) %s",
                self._path,
                exc,
                " ".join(self.ids),
            )
            self._path.rename(self._path.with_suffix(".corrupt"))
            return
        self.keys = {key_id(r): VerifyKey(r) for r in raws}
        self.sequence = sequence
        logger.info(
            "trusting operator key(s) %s (persisted, sequence %d)", " ".join(self.ids), sequence
        )

    def adopt(self, keys: tuple[bytes, ...], *, sequence: int) -> bool:
        """Trust exactly ``keys`` from now on, announced by the verified push ``sequence``;
        persist them first. False (nothing changed) for the set held or an older announcement."""
        announced = {key_id(raw): raw for raw in keys}
        if set(announced) == set(self.keys):
            return False
        if sequence <= self.sequence:
            logger.warning(
                "push seq=%d announces key(s) %s, but seq=%d announced the trusted %s; keeping it",
                sequence,
                " ".join(sorted(announced)),
                self.sequence,
                " ".join(self.ids),
            )
            return False
        if self._path is not None:
            body = json.dumps(
                {
                    "sequence": sequence,
                    "keys": [base64.b64encode(r).decode("ascii") for r in announced.values()],
                }
            ).encode()
            tmp = self._path.with_suffix(".tmp")
            try:
                tmp.write_bytes(body)
                os.replace(tmp, self._path)
            except OSError as exc:
                raise StoreError(f"cannot persist the trusted keys in {self._path}: {exc}") from exc
        before = self.ids
        self.keys = {i: VerifyKey(r) for i, r in announced.items()}
        self.sequence = sequence
        logger.info(
            "now trusting operator key(s) %s (was %s), announced by seq=%d",
            " ".join(self.ids),
            " ".join(before),
            sequence,
        )
        return True
