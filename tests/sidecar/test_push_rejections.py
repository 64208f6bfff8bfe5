"""A real sidecar refuses every push that is forged, unsigned, for another pod, expired, replayed,
stale, garbage or oversized, with the documented HTTP status and JSON reason, counts each refusal
by reason in /metrics, and keeps serving afterwards."""

from __future__ import annotations

import base64
import json
import socket
import time

import pytest
from sidecar_harness import POD, Answer, SidecarProcess, Signer

from hotconf.envelope import MAX_BODY_BYTES, PodRef


def expect(answer: Answer, status: int, reason: str) -> None:
    assert answer.status == status, answer
    assert answer.reason == reason, answer
    assert answer.body["error"]["message"]


def test_forged_signature_is_refused(sidecar: SidecarProcess) -> None:
    forger = Signer()
    expect(sidecar.push(forger.body({"k": "v"})), 401, "bad_signature")


def test_altered_payload_is_refused(sidecar: SidecarProcess, signer: Signer) -> None:
    body = json.loads(signer.body({"k": "v"}))
    payload = base64.b64decode(body["payload"]).replace(b'"k":"v"', b'"k":"w"')
    body["payload"] = base64.b64encode(payload).decode()
    expect(sidecar.push(json.dumps(body).encode()), 401, "bad_signature")


@pytest.mark.parametrize("signature", [None, ""])
def test_unsigned_push_is_refused(
    sidecar: SidecarProcess, signer: Signer, signature: str | None
) -> None:
    body = json.loads(signer.body({"k": "v"}))
    if signature is None:
        del body["signature"]
    else:
        body["signature"] = signature
    expect(sidecar.push(json.dumps(body).encode()), 401, "unsigned")


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
    state = sidecar.get("/v1/state").body
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
        b'{"payload": "not base64!", "signature": "AA=="}',
        b"\xff\xfe",
        b"[" * 100_000,
    ],
)
def test_garbage_bodies_are_malformed(sidecar: SidecarProcess, body: bytes) -> None:
    expect(sidecar.push(body), 400, "malformed")


def test_signed_garbage_payload_is_malformed(sidecar: SidecarProcess, signer: Signer) -> None:
    from hotconf.envelope import encode_body

    for payload in (b"not json", b'{"v": 2}', b'{"v":1,"pod":{}}'):
        body = encode_body(payload, signer.key.sign(payload))
        expect(sidecar.push(body), 400, "malformed")


def test_oversized_body_is_refused_before_it_is_read(sidecar: SidecarProcess) -> None:
    # Announce more than the limit, send a few bytes: the answer comes without the rest.
    with socket.create_connection(("127.0.0.1", sidecar.port), timeout=10) as conn:
        conn.sendall(
            b"POST /v1/push HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
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
    sidecar.push(Signer().body({"k": "v"}))
    sidecar.push(Signer().body({"k": "v"}))
    metrics = sidecar.get("/metrics").body
    assert 'hotconf_sidecar_pushes_rejected_total{reason="malformed"} 1.0' in metrics
    assert 'hotconf_sidecar_pushes_rejected_total{reason="bad_signature"} 2.0' in metrics
    assert 'hotconf_sidecar_pushes_rejected_total{reason="wrong_pod"} 0.0' in metrics
