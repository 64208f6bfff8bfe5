"""The operator's Ed25519 signing key, and the signed push bodies built with it.

``__main__`` loads the key once at start-up (:func:`load_signer`) from a PEM file or from a
Secret (``namespace/name``, key ``private.pem``); a missing Secret is created with a fresh key,
so a Helm chart can leave key creation to the operator. The rollout and reconcile code call
:meth:`Signer.sign_push` for each pod: the payload is envelope v2
(:func:`hotconf_wire.envelope.encode_payload`), carries ``sequence = time.time_ns()`` and expires
``ttl`` seconds later. A rollout pushes one snapshot to every pod, so the snapshot's config frame
is encoded once per snapshot and only the first line (pod, sequence, expiry) per pod.

Key rotation: the Secret (or the directory of the key file) may also hold ``next.pem``, the key
that will sign next. The signer still signs with ``private.pem`` but announces both public keys
in every push (``trust``) and names its key in the header (``keyid``); sidecars adopt the
announced set, so once every pod trusts both, ``next.pem`` can become ``private.pem``
(``docs/operator.md``, "Rotating the signing key").
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from pathlib import Path
from typing import NamedTuple

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from hotconf_operator._errors import KubeApiError, SigningKeyError
from hotconf_operator._kubeapi import KubeApi
from hotconf_operator._settings import SigningConfig
from hotconf_wire.envelope import PodRef, Push, encode_payload, encode_signature, key_id
from hotconf_wire.protocol import ConfigSnapshot, encode_body

__all__ = ["NEXT_KEY", "SECRET_KEY", "SignedPush", "Signer", "load_signer"]

#: The key of the signing-key Secret that holds the PEM private key.
SECRET_KEY = "private.pem"
#: The key of the next signing key during a rotation (in the Secret, or next to the key file).
NEXT_KEY = "next.pem"
#: Written next to it when the operator creates the Secret, for charts and humans.
SECRET_PUBLIC_KEY = "public.pem"
logger = logging.getLogger("hotconf_operator.signing")

#: Snapshots whose encoded frame the signer keeps (rollouts of different ConfigMaps interleave).
_FRAMES_KEPT = 16


class SignedPush(NamedTuple):
    """One pod's ``POST /v2/push``: the body (the payload) and its ``Hotconf-Signature``."""

    body: bytes
    signature: str


class Signer:
    """Signs push payloads with one Ed25519 private key, announcing it and ``next_keys``."""

    def __init__(
        self,
        key: Ed25519PrivateKey,
        *,
        ttl: float = 60.0,
        next_keys: tuple[Ed25519PublicKey, ...] = (),
    ) -> None:
        self._key = key
        self._ttl = ttl
        raw = [_raw(key.public_key())] + [_raw(k) for k in next_keys]
        #: The raw public keys every push announces: this key first, then the next one(s).
        self.trust: tuple[bytes, ...] = tuple(dict.fromkeys(raw))
        self.key_id = key_id(raw[0])
        #: The ids of :attr:`trust`, as a pod that trusts exactly them reports them.
        self.trust_ids: frozenset[str] = frozenset(key_id(k) for k in self.trust)
        self._announced = (self._key.public_key(), *next_keys)
        # id(snapshot) -> (snapshot, its config frame's body), for the last few snapshots
        # pushed (the snapshot is held, so its id cannot be reused meanwhile)
        self._frames: dict[int, tuple[ConfigSnapshot, bytes]] = {}

    @classmethod
    def generate(cls, *, ttl: float = 60.0) -> Signer:
        return cls(Ed25519PrivateKey.generate(), ttl=ttl)

    @classmethod
    def from_pem(cls, pem: bytes, *, source: str, ttl: float = 60.0) -> Signer:
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise SigningKeyError(
                f"{source} does not hold an unencrypted PEM private key: {exc}; "
                "create one with `openssl genpkey -algorithm ed25519`"
            ) from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise SigningKeyError(
                f"{source} holds a {type(key).__name__}, not an Ed25519 key; "
                "create one with `openssl genpkey -algorithm ed25519`"
            )
        return cls(key, ttl=ttl)

    def private_pem(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def public_pem(self) -> bytes:
        """What sidecars verify with (``HOTCONF_OPERATOR_PUBLIC_KEY``)."""
        return self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def trusted_pem(self) -> bytes:
        """Every announced public key as PEM, one block after another: what the webhook
        injects, so a pod admitted during a rotation trusts the next key from the start."""
        blocks = {
            k.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ): None
            for k in self._announced
        }
        return b"".join(blocks)

    def sign(self, payload: bytes) -> bytes:
        return self._key.sign(payload)

    def _frame(self, snapshot: ConfigSnapshot) -> bytes:
        cached = self._frames.get(id(snapshot))
        if cached is not None and cached[0] is snapshot:
            return cached[1]
        frame = encode_body(snapshot)
        if len(self._frames) >= _FRAMES_KEPT:
            del self._frames[next(iter(self._frames))]  # the oldest
        self._frames[id(snapshot)] = (snapshot, frame)
        return frame

    def sign_push(
        self, pod: PodRef, snapshot: ConfigSnapshot, *, now: float | None = None
    ) -> SignedPush:
        """The signed envelope v2 for this pod: payload and ``Hotconf-Signature`` header."""
        sequence = time.time_ns()
        expires = (sequence / 1e9 if now is None else now) + self._ttl
        push = Push(
            pod=pod, snapshot=snapshot, sequence=sequence, expires=expires, trust=self.trust
        )
        payload = encode_payload(push, frame=self._frame(snapshot))
        return SignedPush(payload, encode_signature(self._key.sign(payload), key=self.key_id))


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _with_next(signer: Signer, next_pem: bytes | None, *, source: str, ttl: float) -> Signer:
    """``signer`` announcing the public key of ``next_pem`` too (when there is one)."""
    if next_pem is None:
        return signer
    upcoming = Signer.from_pem(next_pem, source=source, ttl=ttl)
    following = Signer(signer._key, ttl=ttl, next_keys=(upcoming._key.public_key(),))
    logger.info(
        "signing with key %s and announcing the next key %s (%s)",
        following.key_id,
        upcoming.key_id,
        source,
    )
    return following


async def load_signer(config: SigningConfig, *, api: KubeApi | None, ttl: float) -> Signer:
    """The key named by the settings: the file if given, else the Secret (created if missing)."""
    if config.key_file is not None:
        try:
            pem = await asyncio.to_thread(Path(config.key_file).read_bytes)
        except OSError as exc:
            raise SigningKeyError(f"cannot read signing key file {config.key_file}: {exc}") from exc
        signer = Signer.from_pem(pem, source=str(config.key_file), ttl=ttl)
        next_file = Path(config.key_file).with_name(NEXT_KEY)
        try:
            next_pem: bytes | None = await asyncio.to_thread(next_file.read_bytes)
        except FileNotFoundError:
            next_pem = None
        except OSError as exc:
            raise SigningKeyError(f"cannot read next signing key file {next_file}: {exc}") from exc
        return _with_next(signer, next_pem, source=str(next_file), ttl=ttl)
    assert config.key_secret is not None and api is not None
    namespace, name = config.key_secret.split("/", 1)
    source = f"Secret {namespace}/{name} key {SECRET_KEY}"
    try:
        secret = await api.get_secret(namespace, name)
        if secret is None:
            signer = Signer.generate(ttl=ttl)
            await api.create_secret(
                namespace,
                name,
                {SECRET_KEY: signer.private_pem(), SECRET_PUBLIC_KEY: signer.public_pem()},
            )
            return signer
    except KubeApiError as exc:
        if exc.status == 409:  # another replica created it first: read theirs
            return await load_signer(config, api=api, ttl=ttl)
        raise SigningKeyError(f"cannot read or create {source}: {exc}") from exc
    data = secret.get("data") or {}
    raw = data.get(SECRET_KEY)
    if not raw:
        raise SigningKeyError(f"{source} is missing; put a PEM Ed25519 private key there")
    try:
        pem = base64.b64decode(raw, validate=True)
    except ValueError as exc:  # binascii.Error: an API server would not store this
        raise SigningKeyError(
            f"{source} is not base64 as Secret data must be ({exc}); put a PEM Ed25519 private "
            "key there with `kubectl create secret generic NAME --from-file=private.pem=FILE`"
        ) from exc
    signer = Signer.from_pem(pem, source=source, ttl=ttl)
    raw_next = data.get(NEXT_KEY)
    if not raw_next:
        return signer
    next_source = f"Secret {namespace}/{name} key {NEXT_KEY}"
    try:
        next_pem = base64.b64decode(raw_next, validate=True)
    except ValueError as exc:
        raise SigningKeyError(f"{next_source} is not base64 ({exc})") from exc
    return _with_next(signer, next_pem, source=next_source, ttl=ttl)
