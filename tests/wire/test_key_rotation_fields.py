"""The wire's key-rotation fields: a payload's ``trust`` list round-trips and every malformed one
is refused as ``malformed``; the header's ``keyid`` round-trips beside the signature; a pod
state's ``trusted`` ids round-trip, and a state without them (an older sidecar) still decodes."""

from __future__ import annotations

import base64
import hashlib

import pytest

from hotconf.testing import snapshot
from hotconf_wire.answers import PodState
from hotconf_wire.envelope import (
    PodRef,
    Push,
    decode_payload,
    decode_signature,
    encode_head,
    encode_payload,
    encode_signature,
    key_id,
    signature_key_id,
)
from hotconf_wire.errors import EnvelopeError
from hotconf_wire.protocol import encode_body

POD = PodRef("default", "web-0", "uid-0")
SNAP = snapshot({"a": "1"})
KEYS = (b"\1" * 32, b"\2" * 32)


def test_trust_round_trips_and_is_absent_unless_announced() -> None:
    announced = Push(POD, SNAP, sequence=7, expires=1e10, trust=KEYS)
    assert decode_payload(encode_payload(announced)).trust == KEYS
    plain = encode_payload(Push(POD, SNAP, sequence=7, expires=1e10))
    assert b"trust" not in plain and decode_payload(plain).trust is None


@pytest.mark.parametrize(
    ("trust", "says"),
    [
        ([], "non-empty list"),
        ("AAAA", "non-empty list"),
        ([1], "not base64"),
        (["not base64!"], "not base64"),
        ([base64.b64encode(b"x" * 31).decode()], "31 bytes"),
        ([base64.b64encode(b"x" * 32).decode()] * 9, "more than 8"),
    ],
)
def test_malformed_trust_is_refused(trust: object, says: str) -> None:
    import json

    head = json.loads(encode_head(POD, sequence=7, expires=1e10))
    head["trust"] = trust
    payload = json.dumps(head).encode() + b"\n" + encode_body(SNAP)
    with pytest.raises(EnvelopeError) as caught:
        decode_payload(payload)
    assert caught.value.reason == "malformed"
    assert says in caught.value.message


def test_key_id_travels_beside_the_signature() -> None:
    assert key_id(KEYS[0]) == hashlib.sha256(KEYS[0]).hexdigest()[:16]
    header = encode_signature(b"s" * 64, key=key_id(KEYS[0]))
    assert header.startswith(f"keyid={key_id(KEYS[0])}, ed25519=")
    assert decode_signature(header) == b"s" * 64
    assert signature_key_id(header) == key_id(KEYS[0])
    assert signature_key_id(encode_signature(b"s" * 64)) is None


def test_pod_state_trusted_ids_round_trip_and_may_be_absent() -> None:
    state = PodState(POD, (), trusted=("a1", "b2"))
    assert PodState.decode(state.encode()) == state
    older = PodState(POD, ())
    assert b"trusted" not in older.encode()
    assert PodState.decode(older.encode()).trusted is None
