"""Loading the operator's Ed25519 public keys from PEM text; called once at start-up.

``HOTCONF_OPERATOR_PUBLIC_KEY`` may hold several PEM blocks (during a key rotation the webhook
injects every key the operator announces); :func:`load_public_keys` reads them all.

An Ed25519 public key in PEM is always the same 44-byte SubjectPublicKeyInfo: a fixed 12-byte
header and the 32 key bytes, which are what this returns (``_trust`` turns them into PyNaCl
verifiers). Reading it here keeps a generic PEM loader (and its memory) out of the sidecar. Raises
:class:`~hotconf_sidecar._errors.PublicKeyError`: not PEM, not a public key, or not Ed25519.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Final

from hotconf_sidecar._errors import PublicKeyError

__all__ = ["load_public_key", "load_public_keys"]

# SEQUENCE { SEQUENCE { OID 1.3.101.112 (Ed25519) } BIT STRING (33 bytes: 0 unused bits + key) }
_SPKI_PREFIX: Final = bytes.fromhex("302a300506032b6570032100")
_PEM_RE: Final = re.compile(
    r"-----BEGIN PUBLIC KEY-----\s*([A-Za-z0-9+/=\s]+?)\s*-----END PUBLIC KEY-----"
)


def load_public_key(pem: str) -> bytes:
    """The raw 32 bytes of the key in ``pem`` (``-----BEGIN PUBLIC KEY-----`` ..., the first
    block)."""
    return load_public_keys(pem)[0]


def load_public_keys(pem: str) -> list[bytes]:
    """Parse every ``PUBLIC KEY`` block of ``pem``; at least one is required."""
    matches = list(_PEM_RE.finditer(pem))
    if not matches:
        raise PublicKeyError(
            "the operator's public key is not a PEM 'PUBLIC KEY' block; give the key the "
            "operator prints or stores next to its signing key"
        )
    return [_key_of(match) for match in matches]


def _key_of(match: re.Match[str]) -> bytes:
    try:
        der = base64.b64decode("".join(match.group(1).split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise PublicKeyError(f"the operator's public key holds invalid base64: {exc}") from exc
    if len(der) != len(_SPKI_PREFIX) + 32 or not der.startswith(_SPKI_PREFIX):
        raise PublicKeyError("the operator's public key is not an Ed25519 key")
    return der[len(_SPKI_PREFIX) :]
