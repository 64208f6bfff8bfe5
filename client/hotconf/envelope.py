"""The push envelope: how the operator hands one ConfigMap revision to one pod's sidecar.

The operator signs the exact payload bytes with its Ed25519 key; the sidecar verifies the
signature over the same bytes before it parses anything, so no canonical form is needed. This
module is the pure-Python half shared by both: it builds and parses payloads and HTTP bodies
and names every way one can be wrong. Signing (operator) and verification (sidecar) use the
``cryptography`` package in those components, which this library does not depend on.

Specified in ``docs/protocol.md`` ("Push envelope"). Errors::

    EnvelopeError (hotconf.errors.HotconfError)
      .reason: one of REJECT_REASONS, .status: the HTTP status the sidecar answers with
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Final

from hotconf._errors import HotconfError, ProtocolError
from hotconf.protocol import MAX_FRAME_BYTES, ConfigSnapshot, from_wire, to_wire

__all__ = [
    "ENVELOPE_VERSION",
    "MAX_BODY_BYTES",
    "REJECT_REASONS",
    "EnvelopeError",
    "PodRef",
    "Push",
    "decode_body",
    "decode_payload",
    "encode_body",
    "encode_payload",
    "encode_snapshot_fields",
]

ENVELOPE_VERSION: Final = 1

#: A push body carries a whole snapshot, base64-encoded once more: 8 MiB frame * 4/3, rounded.
MAX_BODY_BYTES: Final = MAX_FRAME_BYTES * 4 // 3 + 64 * 1024

#: Why a sidecar refuses a push, and the HTTP status it answers with.
REJECT_REASONS: Final[dict[str, int]] = {
    "malformed": 400,  # not JSON, missing or mistyped fields, bad base64, bad snapshot
    "unsigned": 401,  # no signature at all
    "bad_signature": 401,  # the signature does not verify with the operator's public key
    "wrong_pod": 403,  # signed for another pod (namespace, name or UID differ)
    "expired": 403,  # the envelope's expiry has passed
    "replayed": 409,  # this sequence was already accepted
    "stale": 409,  # an envelope with a higher sequence was already accepted
    "too_large": 413,  # the body exceeds MAX_BODY_BYTES
}


class EnvelopeError(HotconfError):
    """A push envelope was refused; ``reason`` is a key of :data:`REJECT_REASONS`."""

    def __init__(self, reason: str, message: str) -> None:
        if reason not in REJECT_REASONS:
            raise ValueError(f"unknown envelope rejection reason {reason!r}")
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message

    @property
    def status(self) -> int:
        return REJECT_REASONS[self.reason]

    def to_json(self) -> dict[str, Any]:
        return {"error": {"reason": self.reason, "message": self.message}}


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
    """What an envelope says: this snapshot, for this pod, as number ``sequence``, until then."""

    pod: PodRef
    snapshot: ConfigSnapshot
    sequence: int
    expires: float


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def encode_snapshot_fields(snapshot: ConfigSnapshot) -> bytes:
    """The snapshot's part of a payload, encoded once and reused for every pod of a rollout.

    JSON of ``configmap``, ``revision``, ``data`` and ``binaryData`` without the opening brace:
    :func:`encode_payload` puts the per-pod fields in front of it.
    """
    wire = to_wire(snapshot)
    fields = {
        "configmap": {"namespace": snapshot.namespace, "name": snapshot.name},
        "revision": snapshot.revision,
        "data": wire["data"],
        "binaryData": wire["binaryData"],
    }
    return _dumps(fields)[1:]


def encode_payload(push: Push, *, snapshot_fields: bytes | None = None) -> bytes:
    """The bytes the operator signs.

    ``snapshot_fields`` is :func:`encode_snapshot_fields` of ``push.snapshot``, when the caller
    pushes one snapshot to many pods (with 1 MiB of data, encoding it is most of the work).
    """
    head = {
        "v": ENVELOPE_VERSION,
        "pod": {"namespace": push.pod.namespace, "name": push.pod.name, "uid": push.pod.uid},
        "sequence": push.sequence,
        "expires": push.expires,
    }
    tail = snapshot_fields if snapshot_fields is not None else encode_snapshot_fields(push.snapshot)
    return _dumps(head)[:-1] + b"," + tail


def _require(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise EnvelopeError("malformed", f"payload field {key!r} must be {what}")
    return value


def decode_payload(payload: bytes) -> Push:
    """Parse verified payload bytes; raise :class:`EnvelopeError` ("malformed") naming the fault."""
    try:
        obj = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise EnvelopeError("malformed", f"payload is not UTF-8 JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise EnvelopeError("malformed", "payload must be a JSON object")
    version = _require(obj, "v", int, "an integer")
    if version != ENVELOPE_VERSION:
        raise EnvelopeError(
            "malformed", f"envelope version {version} is not supported (this side speaks 1)"
        )
    pod = _require(obj, "pod", dict, "an object")
    pod_ref = PodRef(
        namespace=_require(pod, "namespace", str, "a string"),
        name=_require(pod, "name", str, "a string"),
        uid=_require(pod, "uid", str, "a string"),
    )
    configmap = _require(obj, "configmap", dict, "an object")
    sequence = _require(obj, "sequence", int, "an integer")
    expires = _require(obj, "expires", (int, float), "a number (Unix seconds)")
    try:
        snapshot = from_wire(
            {
                "type": "config",
                "namespace": configmap.get("namespace"),
                "name": configmap.get("name"),
                "revision": obj.get("revision"),
                "data": obj.get("data"),
                "binaryData": obj.get("binaryData", {}),
            }
        )
    except ProtocolError as exc:
        raise EnvelopeError("malformed", exc.message) from exc
    assert isinstance(snapshot, ConfigSnapshot)
    return Push(pod=pod_ref, snapshot=snapshot, sequence=sequence, expires=float(expires))


def encode_body(payload: bytes, signature: bytes) -> bytes:
    """The HTTP request body of ``POST /v1/push``.

    The bytes of ``json.dumps({"payload": ..., "signature": ...})``, put together directly:
    base64 needs no JSON escaping, and the operator builds one body per pod.
    """
    return (
        b'{"payload": "'
        + base64.b64encode(payload)
        + b'", "signature": "'
        + base64.b64encode(signature)
        + b'"}'
    )


def decode_body(body: bytes) -> tuple[bytes, bytes]:
    """Split a push body into payload and signature bytes, both still unverified."""
    if len(body) > MAX_BODY_BYTES:
        raise EnvelopeError(
            "too_large", f"push body of {len(body)} bytes exceeds {MAX_BODY_BYTES} bytes"
        )
    try:
        obj = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise EnvelopeError("malformed", f"push body is not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise EnvelopeError("malformed", "push body must be a JSON object")
    raw_payload = obj.get("payload")
    if not isinstance(raw_payload, str) or not raw_payload:
        raise EnvelopeError("malformed", "push body field 'payload' must be a base64 string")
    raw_signature = obj.get("signature")
    if raw_signature is None or raw_signature == "":
        raise EnvelopeError("unsigned", "push body has no 'signature'")
    if not isinstance(raw_signature, str):
        raise EnvelopeError("malformed", "push body field 'signature' must be a base64 string")
    try:
        payload = base64.b64decode(raw_payload, validate=True)
        signature = base64.b64decode(raw_signature, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EnvelopeError("malformed", f"push body holds invalid base64: {exc}") from exc
    return payload, signature
