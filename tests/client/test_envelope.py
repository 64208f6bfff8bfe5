"""The push envelope's pure half: a payload round-trips, one encoded with the snapshot's fields
reused for many pods is byte for byte the one encoded whole, and every malformed body or payload
is refused with the reason and HTTP status the sidecar answers with."""

from __future__ import annotations

import base64
import json

import pytest

from hotconf.envelope import (
    MAX_BODY_BYTES,
    REJECT_REASONS,
    EnvelopeError,
    PodRef,
    Push,
    decode_body,
    decode_payload,
    encode_body,
    encode_payload,
    encode_snapshot_fields,
)
from hotconf.testing import snapshot

SNAP = snapshot({"a.yaml": "x: 1\n", "t": 'é "q"'}, binary_data={"b.bin": b"\0\1"})


def push(pod: str = "web-0") -> Push:
    return Push(PodRef("default", pod, f"uid-{pod}"), SNAP, sequence=7, expires=1e10)


def test_payload_round_trips() -> None:
    decoded = decode_payload(encode_payload(push()))
    assert decoded.pod == push().pod
    assert (decoded.sequence, decoded.expires) == (7, 1e10)
    assert decoded.snapshot == SNAP


def test_shared_snapshot_fields_give_the_same_bytes() -> None:
    fields = encode_snapshot_fields(SNAP)
    for pod in ("web-0", "web-1"):
        assert encode_payload(push(pod), snapshot_fields=fields) == encode_payload(push(pod))


def test_body_round_trips() -> None:
    assert decode_body(encode_body(b"payload", b"sig")) == (b"payload", b"sig")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "malformed"),
        (b"[]", "malformed"),
        (json.dumps({"payload": "cGF5"}).encode(), "unsigned"),
        (json.dumps({"payload": "cGF5", "signature": 3}).encode(), "malformed"),
        (json.dumps({"payload": "!!", "signature": "c2ln"}).encode(), "malformed"),
        (b" " * (MAX_BODY_BYTES + 1), "too_large"),
    ],
)
def test_bad_bodies(body: bytes, reason: str) -> None:
    with pytest.raises(EnvelopeError) as info:
        decode_body(body)
    assert info.value.reason == reason
    assert info.value.status == REJECT_REASONS[reason]
    assert info.value.to_json()["error"]["reason"] == reason


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"v": 2}, "version 2"),
        ({"sequence": "7"}, "'sequence'"),
        ({"expires": True}, "'expires'"),
        ({"pod": {"namespace": "d", "name": "p"}}, "'uid'"),
        ({"data": {"k": 1}}, "must be a string"),
        ({"revision": ""}, "'revision' is empty"),
    ],
)
def test_bad_payloads_are_malformed(change: dict[str, object], words: str) -> None:
    payload = json.loads(encode_payload(push()))
    payload.update(change)
    with pytest.raises(EnvelopeError) as info:
        decode_payload(json.dumps(payload).encode())
    assert info.value.reason == "malformed"
    assert words in info.value.message


def test_signature_and_payload_stay_bytes() -> None:
    body = encode_body(b"\xff\x00", b"\x01")
    raw = json.loads(body)
    assert base64.b64decode(raw["payload"]) == b"\xff\x00"
