"""The push envelope (v2): how the operator hands one ConfigMap revision to one pod's sidecar.

The body of ``POST /v2/push`` is the signed payload itself, and the Ed25519 signature travels
beside it in the ``Hotconf-Signature`` header. The payload is two lines of compact JSON::

    {"v":2,"pod":{"namespace":..,"name":..,"uid":..},"sequence":N,"expires":T[,"trust":[..]]}  LF
    {"type":"config","namespace":..,"name":..,"revision":..,"data":..,"binaryData":..}

The first line says for which pod, as which sequence and until when; the second is the body of
the socket frame that carries the snapshot to the pod's clients, byte for byte (wire protocol
v1, :mod:`hotconf_wire.protocol`). The sidecar verifies the signature over the exact payload,
parses both lines, and relays the second line's bytes unchanged; the operator encodes that line
once per snapshot and only the first line per pod. ``binaryData`` is base64 once, as in the
frame; the signature is base64 once, in the header. JSON escapes every control character, so
the only raw LF is the one between the lines. No canonical form is needed: nothing is
re-encoded before it is verified.

Key rotation: the header may name the signing key (``keyid=<id>, ed25519=<sig>``, the id is
:func:`key_id` of the raw public key), and the first line may carry ``trust``, the raw Ed25519
public keys (base64) the operator wants the pod to trust from now on. A sidecar takes the
announced set only from a push that verifies with a key it already trusts and whose signing key
is in the set (``docs/protocol.md``, "Key rotation").

This module builds and parses payloads and the signature header and names every way they can be
wrong (:class:`hotconf_wire.errors.EnvelopeError`, with the reason and HTTP status). Signing
(operator) and verification (sidecar) use the ``cryptography`` package in those components.
Specified in ``docs/protocol.md`` ("Push envelope").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Final

from hotconf_wire.errors import EnvelopeError, ProtocolError
from hotconf_wire.protocol import MAX_FRAME_BYTES, ConfigSnapshot, decode_body, encode_body

__all__ = [
    "API_VERSION",
    "DEFAULT_PORT",
    "ENVELOPE_VERSION",
    "MAX_BODY_BYTES",
    "MAX_TRUSTED_KEYS",
    "PUSH_PATH",
    "SIGNATURE_HEADER",
    "STATE_PATH",
    "PodRef",
    "Push",
    "decode_payload",
    "decode_signature",
    "encode_head",
    "encode_payload",
    "encode_signature",
    "key_id",
    "signature_key_id",
]

ENVELOPE_VERSION: Final = 2
#: The sidecar's HTTP API version: its paths start with ``/v2/``.
API_VERSION: Final = 2
PUSH_PATH: Final = "/v2/push"
STATE_PATH: Final = "/v2/state"
#: The header that carries the signature: ``Hotconf-Signature: ed25519=<base64>``.
SIGNATURE_HEADER: Final = "Hotconf-Signature"
#: The port a sidecar serves its HTTP API on unless told otherwise (and the pod's annotation
#: ``hotconf.dev/port`` defaults to).
DEFAULT_PORT: Final = 8790

#: A push body is a config frame's body and a short first line.
MAX_BODY_BYTES: Final = MAX_FRAME_BYTES + 4096

_ALGORITHM: Final = "ed25519="
_KEY_ID: Final = "keyid="
#: At most this many keys in a ``trust`` list (old and new, with room to spare).
MAX_TRUSTED_KEYS: Final = 8


def key_id(raw_public_key: bytes) -> str:
    """The short id of an Ed25519 public key: the first 16 hex digits of SHA-256 of its 32 raw
    bytes. Names the key in ``keyid=``, in a pod's state and in logs."""
    return hashlib.sha256(raw_public_key).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class PodRef:
    """The pod an envelope is meant for; the UID tells apart pods that reuse a name."""

    namespace: str
    name: str
    uid: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name} ({self.uid})"


@dataclass(frozen=True, slots=True)
class Push:
    """What an envelope says: this snapshot, for this pod, as number ``sequence``, until then.

    ``frame`` is the snapshot's socket-frame body as it was signed (empty for a push being
    built): the sidecar relays these bytes without encoding the snapshot again. ``trust`` is
    the raw public keys the operator announces (``None``: the push announces nothing).
    """

    pod: PodRef
    snapshot: ConfigSnapshot
    sequence: int
    expires: float
    frame: bytes = field(default=b"", compare=False, repr=False)
    trust: tuple[bytes, ...] | None = None


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def encode_head(
    pod: PodRef, *, sequence: int, expires: float, trust: tuple[bytes, ...] | None = None
) -> bytes:
    """The payload's first line, without its LF."""
    head: dict[str, object] = {
        "v": ENVELOPE_VERSION,
        "pod": {"namespace": pod.namespace, "name": pod.name, "uid": pod.uid},
        "sequence": sequence,
        "expires": expires,
    }
    if trust is not None:
        head["trust"] = [base64.b64encode(key).decode("ascii") for key in trust]
    return _dumps(head)


def encode_payload(push: Push, *, frame: bytes | None = None) -> bytes:
    """The bytes the operator signs and sends as the body.

    ``frame`` is :func:`hotconf_wire.protocol.encode_body` of ``push.snapshot``, for a caller
    that pushes one snapshot to many pods (with 1 MiB of data, encoding it is most of the work).
    """
    body = frame if frame is not None else push.frame or encode_body(push.snapshot)
    head = encode_head(push.pod, sequence=push.sequence, expires=push.expires, trust=push.trust)
    return head + b"\n" + body


def _require(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise EnvelopeError("malformed", f"payload field {key!r} must be {what}")
    return value


def _decode_trust(value: object) -> tuple[bytes, ...]:
    if not isinstance(value, list) or not value:
        raise EnvelopeError(
            "malformed", "payload field 'trust' must be a non-empty list of public keys"
        )
    if len(value) > MAX_TRUSTED_KEYS:
        raise EnvelopeError(
            "malformed",
            f"payload field 'trust' names {len(value)} keys, more than {MAX_TRUSTED_KEYS}",
        )
    keys = []
    for index, item in enumerate(value):
        try:
            if not isinstance(item, str):
                raise ValueError(f"a {type(item).__name__}, not a string")
            key = base64.b64decode(item, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise EnvelopeError(
                "malformed", f"payload field 'trust'[{index}] is not base64: {exc}"
            ) from exc
        if len(key) != 32:
            raise EnvelopeError(
                "malformed",
                f"payload field 'trust'[{index}] is {len(key)} bytes; a raw Ed25519 public key "
                "is 32",
            )
        keys.append(key)
    return tuple(keys)


def decode_payload(payload: bytes) -> Push:
    """Parse verified payload bytes; raise :class:`EnvelopeError` ("malformed") naming the fault."""
    head_bytes, newline, frame = payload.partition(b"\n")
    if not newline:
        raise EnvelopeError(
            "malformed",
            "payload must be two lines (the push's fields, then the config frame); this one has "
            "no line feed (envelope v1, from an older hotconf?)",
        )
    try:
        head = json.loads(head_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise EnvelopeError("malformed", f"payload's first line is not UTF-8 JSON: {exc}") from exc
    if not isinstance(head, dict):
        raise EnvelopeError("malformed", "payload's first line must be a JSON object")
    version = _require(head, "v", int, "an integer")
    if version != ENVELOPE_VERSION:
        raise EnvelopeError(
            "malformed",
            f"envelope version {version} is not supported (this side speaks {ENVELOPE_VERSION})",
        )
    pod = _require(head, "pod", dict, "an object")
    pod_ref = PodRef(
        namespace=_require(pod, "namespace", str, "a string"),
        name=_require(pod, "name", str, "a string"),
        uid=_require(pod, "uid", str, "a string"),
    )
    sequence = _require(head, "sequence", int, "an integer")
    expires = _require(head, "expires", (int, float), "a number (Unix seconds)")
    trust = _decode_trust(head["trust"]) if "trust" in head else None
    try:
        snapshot = decode_body(frame)
    except ProtocolError as exc:
        raise EnvelopeError("malformed", f"payload's config frame: {exc.message}") from exc
    if not isinstance(snapshot, ConfigSnapshot):
        raise EnvelopeError(
            "malformed", f"payload's second line is a {type(snapshot).__name__}, not a config frame"
        )
    return Push(
        pod=pod_ref,
        snapshot=snapshot,
        sequence=sequence,
        expires=float(expires),
        frame=frame,
        trust=trust,
    )


def encode_signature(signature: bytes, *, key: str | None = None) -> str:
    """The ``Hotconf-Signature`` header's value for an Ed25519 signature by the key with id
    ``key`` (:func:`key_id`; ``None``: the header names no key)."""
    value = _ALGORITHM + base64.b64encode(signature).decode("ascii")
    return value if key is None else f"{_KEY_ID}{key}, {value}"


def signature_key_id(header: str | None) -> str | None:
    """The ``keyid`` parameter of a ``Hotconf-Signature`` header, or ``None`` if it has none."""
    for part in (header or "").split(","):
        part = part.strip()
        if part.startswith(_KEY_ID):
            return part[len(_KEY_ID) :]
    return None


def decode_signature(header: str | None) -> bytes:
    """The signature in a ``Hotconf-Signature`` header; ``unsigned`` or ``malformed`` if none.

    The header is a comma-separated list of ``name=value`` parameters; ``ed25519`` carries the
    signature, ``keyid`` names the key (:func:`signature_key_id`), and parameters this side does
    not know are ignored.
    """
    if not header or not header.strip():
        raise EnvelopeError("unsigned", f"the push has no {SIGNATURE_HEADER} header")
    for part in header.split(","):
        part = part.strip()
        if part.startswith(_ALGORITHM):
            try:
                signature = base64.b64decode(part[len(_ALGORITHM) :], validate=True)
            except (binascii.Error, ValueError) as exc:
                raise EnvelopeError(
                    "malformed", f"{SIGNATURE_HEADER} holds invalid base64: {exc}"
                ) from exc
            if len(signature) != 64:
                raise EnvelopeError(
                    "malformed",
                    f"{SIGNATURE_HEADER}: an Ed25519 signature is 64 bytes, not {len(signature)}",
                )
            return signature
    raise EnvelopeError(
        "unsigned", f"the {SIGNATURE_HEADER} header has no ed25519=<base64> signature"
    )
