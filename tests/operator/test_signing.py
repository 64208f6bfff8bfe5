"""Pushes signed by the operator verify with its public key and decode to the right push.

Proves: the signature (the ``Hotconf-Signature`` header) verifies over the exact body; the
payload names the pod, the ConfigMap and revision, a sequence that grows and an expiry 60 s
ahead; its second line is the snapshot's socket frame byte for byte; one snapshot signed for
many pods (its frame encoded once) decodes whole for each of them; keys load from PEM and
non-Ed25519 or garbage keys are refused with a message saying how to make one.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key

from hotconf_operator._errors import SigningKeyError
from hotconf_operator._signing import Signer
from hotconf_wire.envelope import PodRef, decode_payload, decode_signature
from hotconf_wire.protocol import ConfigSnapshot, compute_revision, encode


def test_push_body_verifies_and_decodes() -> None:
    signer = Signer.generate(ttl=60)
    public = serialization.load_pem_public_key(signer.public_pem())
    assert isinstance(public, Ed25519PublicKey)
    data = {"a.yaml": "x: 1\n"}
    snap = ConfigSnapshot("ns", "app", compute_revision(data), data)
    pod = PodRef("ns", "web-0", "uid-1")
    before = time.time()
    signed = signer.sign_push(pod, snap)
    public.verify(decode_signature(signed.signature), signed.body)  # raises if forged
    push = decode_payload(signed.body)
    assert push.pod == pod and push.snapshot.revision == snap.revision
    assert dict(push.snapshot.data) == data
    assert before + 59 < push.expires < time.time() + 61
    assert encode(snap) == len(push.frame).to_bytes(4, "big") + push.frame
    assert decode_payload(signer.sign_push(pod, snap).body).sequence > push.sequence


def test_one_snapshot_signed_for_many_pods_decodes_whole_for_each() -> None:
    signer = Signer.generate(ttl=60)
    data = {"a.yaml": "x: 1\n", "t": '\u00e9\n"q"'}
    binary = {"logo.png": b"\x89PNG\x00"}
    snap = ConfigSnapshot("ns", "app", compute_revision(data, binary), data, binary)
    other = ConfigSnapshot("ns", "other", compute_revision({"k": "v"}), {"k": "v"})
    pods = [PodRef("ns", f"web-{i}", f"uid-{i}") for i in range(3)]
    for pod in pods:
        for snapshot in (snap, other):
            push = decode_payload(signer.sign_push(pod, snapshot).body)
            assert push.pod == pod
            assert push.snapshot == snapshot


def test_key_round_trips_through_pem() -> None:
    signer = Signer.generate()
    again = Signer.from_pem(signer.private_pem(), source="test")
    assert again.public_pem() == signer.public_pem()


def test_wrong_keys_are_refused() -> None:
    rsa = generate_private_key(public_exponent=65537, key_size=1024).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(SigningKeyError, match="not an Ed25519 key"):
        Signer.from_pem(rsa, source="rsa.pem")
    with pytest.raises(SigningKeyError, match="openssl genpkey"):
        Signer.from_pem(b"garbage", source="garbage.pem")


def test_a_next_key_is_announced_but_the_current_key_signs() -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from hotconf_wire.envelope import key_id, signature_key_id

    current, upcoming = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    signer = Signer(current, next_keys=(upcoming.public_key(),))
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    expected = (current.public_key().public_bytes(*raw), upcoming.public_key().public_bytes(*raw))
    snap = ConfigSnapshot("default", "app", compute_revision({"a": "1"}, {}), {"a": "1"})
    signed = signer.sign_push(PodRef("default", "web-0", "uid"), snap)
    assert decode_payload(signed.body).trust == expected
    assert signature_key_id(signed.signature) == key_id(expected[0])
    current.public_key().verify(decode_signature(signed.signature), signed.body)
    assert signer.trust_ids == {key_id(k) for k in expected}
    assert signer.trusted_pem().count(b"BEGIN PUBLIC KEY") == 2


async def test_next_pem_beside_the_key_file_is_announced(tmp_path: Path) -> None:
    from hotconf_operator._settings import SigningConfig
    from hotconf_operator._signing import load_signer

    current, upcoming = Signer.generate(), Signer.generate()
    (tmp_path / "private.pem").write_bytes(current.private_pem())
    config = SigningConfig(key_file=tmp_path / "private.pem", key_secret=None)
    alone = await load_signer(config, api=None, ttl=60)
    assert alone.trust_ids == {alone.key_id}
    (tmp_path / "next.pem").write_bytes(upcoming.private_pem())
    both = await load_signer(config, api=None, ttl=60)
    assert both.key_id == alone.key_id
    assert both.trust_ids == {alone.key_id, upcoming.key_id}
