"""Envelope v2's pure half: a payload round-trips; its second line is the snapshot's socket frame
byte for byte, shared by every pod's payload; ``binaryData`` is base64 once (as in the frame);
the signature header round-trips and ignores parameters it does not know; and every malformed
payload or header is refused with the reason and HTTP status the sidecar answers with."""

from __future__ import annotations

import base64
import json

import pytest

from hotconf.testing import snapshot
from hotconf_wire.envelope import (
    PodRef,
    Push,
    decode_payload,
    decode_signature,
    encode_payload,
    encode_signature,
)
from hotconf_wire.errors import REJECT_REASONS, EnvelopeError
from hotconf_wire.protocol import encode, encode_body

SNAP = snapshot({"a.yaml": "x: 1\n", "t": 'é "q"\n'}, binary_data={"b.bin": b"\0\1"})


def push(pod: str = "web-0") -> Push:
    return Push(PodRef("default", pod, f"uid-{pod}"), SNAP, sequence=7, expires=1e10)


def test_payload_round_trips() -> None:
    decoded = decode_payload(encode_payload(push()))
    assert decoded.pod == push().pod
    assert (decoded.sequence, decoded.expires) == (7, 1e10)
    assert decoded.snapshot == SNAP


def test_second_line_is_the_socket_frame_byte_for_byte() -> None:
    payload = encode_payload(push())
    head, newline, frame = payload.partition(b"\n")
    assert newline and b"\n" not in frame  # JSON escapes the values' own line feeds
    assert encode(SNAP) == len(frame).to_bytes(4, "big") + frame
    assert decode_payload(payload).frame == frame
    assert json.loads(head) == {
        "v": 2,
        "pod": {"namespace": "default", "name": "web-0", "uid": "uid-web-0"},
        "sequence": 7,
        "expires": 1e10,
    }


def test_binary_data_is_base64_once() -> None:
    frame = json.loads(encode_payload(push()).partition(b"\n")[2])
    assert base64.b64decode(frame["binaryData"]["b.bin"]) == b"\0\1"


def test_a_shared_frame_gives_the_same_bytes() -> None:
    frame = encode_body(SNAP)
    for pod in ("web-0", "web-1"):
        assert encode_payload(push(pod), frame=frame) == encode_payload(push(pod))


def test_signature_header_round_trips_and_ignores_unknown_parameters() -> None:
    signature = bytes(range(64))
    header = encode_signature(signature)
    assert header.startswith("ed25519=")
    assert decode_signature(header) == signature
    assert decode_signature(f"keyid=k1, {header}, future=x") == signature


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "unsigned"),
        ("", "unsigned"),
        ("rsa=AAAA", "unsigned"),
        ("ed25519=!!", "malformed"),
        ("ed25519=" + base64.b64encode(b"short").decode(), "malformed"),
    ],
)
def test_bad_signature_headers(header: str | None, reason: str) -> None:
    with pytest.raises(EnvelopeError) as info:
        decode_signature(header)
    assert info.value.reason == reason
    assert info.value.status == REJECT_REASONS[reason]


def lines(change_head: dict[str, object], change_frame: dict[str, object]) -> bytes:
    head_bytes, _, frame_bytes = encode_payload(push()).partition(b"\n")
    head, frame = json.loads(head_bytes), json.loads(frame_bytes)
    head.update(change_head)
    frame.update(change_frame)
    return json.dumps(head).encode() + b"\n" + json.dumps(frame).encode()


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (lines({"v": 1}, {}), "version 1"),
        (lines({"sequence": "7"}, {}), "'sequence'"),
        (lines({"expires": True}, {}), "'expires'"),
        (lines({"pod": {"namespace": "d", "name": "p"}}, {}), "'uid'"),
        (lines({}, {"data": {"k": 1}}), "must be a string"),
        (lines({}, {"revision": ""}), "'revision' is empty"),
        (lines({}, {"type": "ack"}), "config frame"),
        (b'{"v":2}', "no line feed"),
        (b"[1]\n{}", "first line must be a JSON object"),
        (b"\xff\n{}", "not UTF-8 JSON"),
    ],
)
def test_bad_payloads_are_malformed(payload: bytes, words: str) -> None:
    with pytest.raises(EnvelopeError) as info:
        decode_payload(payload)
    assert info.value.reason == "malformed"
    assert words in info.value.message


def test_unknown_rejection_reasons_are_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="unknown envelope rejection reason"):
        EnvelopeError("because", "no")
