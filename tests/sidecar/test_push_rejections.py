"""A real sidecar refuses every push that is forged, unsigned, for another pod, expired, replayed,
stale, garbage or oversized, with the documented HTTP status and JSON reason, counts each refusal
by reason in /metrics, and keeps serving afterwards."""

from __future__ import annotations

import base64
import json
import socket
import time

import pytest
from sidecar_harness import POD, Answer, Envelope, SidecarProcess, Signer

from hotconf_wire.envelope import MAX_BODY_BYTES, PodRef


def expect(answer: Answer, status: int, reason: str) -> None:
    assert answer.status == status, answer
    assert answer.reason == reason, answer
    assert answer.body["error"]["message"]


def test_forged_signature_is_refused(sidecar: SidecarProcess) -> None:
    forger = Signer()
    expect(sidecar.push(forger.body({"k": "v"})), 401, "bad_signature")


def test_altered_payload_is_refused(sidecar: SidecarProcess, signer: Signer) -> None:
    envelope = signer.body({"k": "v"})
    altered = envelope.with_body(envelope.body.replace(b'"k":"v"', b'"k":"w"'))
    assert altered.body != envelope.body
    expect(sidecar.push(altered), 401, "bad_signature")


@pytest.mark.parametrize("signature", [None, "", "  ", "rsa=AAAA", "keyid=abc"])
def test_unsigned_push_is_refused(
    sidecar: SidecarProcess, signer: Signer, signature: str | None
) -> None:
    envelope = Envelope(signer.body({"k": "v"}).body, signature)
    expect(sidecar.push(envelope), 401, "unsigned")


@pytest.mark.parametrize(
    "signature",
    ["ed25519=not base64!", "ed25519=AAAA", "ed25519=" + base64.b64encode(b"x" * 65).decode()],
)
def test_malformed_signature_header_is_refused(
    sidecar: SidecarProcess, signer: Signer, signature: str
) -> None:
    envelope = Envelope(signer.body({"k": "v"}).body, signature)
    expect(sidecar.push(envelope), 400, "malformed")


def test_signature_header_parameters_it_does_not_know_are_ignored(
    sidecar: SidecarProcess, signer: Signer
) -> None:
    envelope = signer.body({"k": "v"})
    assert envelope.signature is not None
    extended = Envelope(envelope.body, f"keyid=2026-12, {envelope.signature}")
    assert sidecar.push(extended).status == 200


def test_envelope_v1_is_gone_with_a_message_naming_v2(sidecar: SidecarProcess) -> None:
    answer = sidecar.request("POST", "/v1/push", b'{"payload": "", "signature": ""}')
    expect(answer, 410, "gone")
    assert "/v2/push" in answer.body["error"]["message"]


@pytest.mark.parametrize(
    "pod",
    [
        PodRef("other", POD.name, POD.uid),
        PodRef(POD.namespace, "web-1", POD.uid),
        PodRef(POD.namespace, POD.name, "8e1b7c8a-0000-4000-8000-000000000002"),
    ],
    ids=["namespace", "name", "uid"],
)
def test_push_for_another_pod_is_refused(
    sidecar: SidecarProcess, signer: Signer, pod: PodRef
) -> None:
    answer = sidecar.push(signer.body({"k": "v"}, pod=pod))
    expect(answer, 403, "wrong_pod")
    assert pod.uid in answer.body["error"]["message"]


def test_expired_push_is_refused(sidecar: SidecarProcess, signer: Signer) -> None:
    expect(sidecar.push(signer.body({"k": "v"}, expires=time.time() - 1)), 403, "expired")


def test_replayed_and_stale_pushes_are_refused(sidecar: SidecarProcess, signer: Signer) -> None:
    old = signer.body({"k": "1"})
    new = signer.body({"k": "2"})
    assert sidecar.push(new).status == 200
    expect(sidecar.push(new), 409, "replayed")
    expect(sidecar.push(old), 409, "stale")
    state = sidecar.get("/v2/state").body
    [held] = state["configmaps"]
    assert held["sequence"] == signer.sequence
    # Another ConfigMap has a sequence of its own.
    assert sidecar.push(signer.body({"k": "1"}, name="other", sequence=1)).status == 200


def test_same_revision_with_higher_sequence_is_unchanged(
    sidecar: SidecarProcess, signer: Signer
) -> None:
    first = sidecar.push(signer.body({"k": "1"}))
    again = sidecar.push(signer.body({"k": "1"}))
    assert (first.body["status"], again.body["status"]) == ("applied", "unchanged")
    assert again.body["revision"] == first.body["revision"]
    assert again.body["sequence"] == first.body["sequence"] + 1
    expect(sidecar.push(signer.body({"k": "1"}, sequence=first.body["sequence"])), 409, "stale")


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"garbage",
        b"[]",
        b'{"payload": 5, "signature": "AA=="}',
        b"\xff\xfe",
        b"[" * 100_000,
        b"[" * 100_000 + b"\n{}",
        b'{"v":2}\n' + b"[" * 100_000,
    ],
)
def test_unsigned_garbage_is_refused_unread(sidecar: SidecarProcess, body: bytes) -> None:
    expect(sidecar.push(body), 401, "unsigned")


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"not json",
        b'{"v": 2}',
        b'{"v":1,"pod":{}}',
        b"[" * 100_000 + b"\n{}",
        b'{"v":2}\n' + b"[" * 100_000,
        b"\xff\xfe\n\xff",
    ],
)
def test_signed_garbage_payload_is_malformed(
    sidecar: SidecarProcess, signer: Signer, payload: bytes
) -> None:
    expect(sidecar.push(signer.sign(payload)), 400, "malformed")


def test_payload_whose_second_line_is_not_a_config_frame_is_malformed(
    sidecar: SidecarProcess, signer: Signer
) -> None:
    head = signer.body({"k": "v"}).body.partition(b"\n")[0]
    answer = sidecar.push(signer.sign(head + b'\n{"type":"heartbeat"}'))
    expect(answer, 400, "malformed")
    assert "Heartbeat" in answer.body["error"]["message"]


def test_oversized_body_is_refused_before_it_is_read(sidecar: SidecarProcess) -> None:
    # Announce more than the limit, send a few bytes: the answer comes without the rest.
    with socket.create_connection(("127.0.0.1", sidecar.port), timeout=10) as conn:
        conn.sendall(
            b"POST /v2/push HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {MAX_BODY_BYTES + 1}\r\n\r\n".encode()
            + b'{"payload": "'
        )
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), head
    assert json.loads(body)["error"]["reason"] == "too_large"
    assert sidecar.get("/healthz").status == 200


def test_rejections_are_counted_by_reason(sidecar: SidecarProcess, signer: Signer) -> None:
    sidecar.push(b"garbage")
    sidecar.push(signer.sign(b"garbage"))
    sidecar.push(Signer().body({"k": "v"}))
    sidecar.push(Signer().body({"k": "v"}))
    metrics = sidecar.get("/metrics").body
    assert 'hotconf_sidecar_pushes_rejected_total{reason="unsigned"} 1.0' in metrics
    assert 'hotconf_sidecar_pushes_rejected_total{reason="malformed"} 1.0' in metrics
    assert 'hotconf_sidecar_pushes_rejected_total{reason="bad_signature"} 2.0' in metrics
    assert 'hotconf_sidecar_pushes_rejected_total{reason="wrong_pod"} 0.0' in metrics
