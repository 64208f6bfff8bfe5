"""Property: whatever bytes reach the sidecar — HTTP push bodies (random bytes, random JSON,
signed garbage payloads, valid envelopes with one field of either line broken, random
signature headers) or socket frames — it answers
with a 4xx JSON reason or an error frame, and it stays alive and serving."""

from __future__ import annotations

import json
import socket
import struct
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sidecar_harness import POD, Envelope, SidecarProcess, Signer

from hotconf_wire import protocol as p
from hotconf_wire.errors import REJECT_REASONS

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SidecarProcess, Signer]]:
    signer = Signer()
    sidecar = SidecarProcess(tmp_path_factory.mktemp("fuzz"), signer).start()
    try:
        yield sidecar, signer
    finally:
        assert sidecar.stop() == 0
        assert "Traceback" not in sidecar.logs()


def valid_lines(signer: Signer) -> tuple[dict[str, Any], dict[str, Any]]:
    """The two lines of an envelope v2 payload: the push's fields and the config frame."""
    head = {
        "v": 2,
        "pod": {"namespace": POD.namespace, "name": POD.name, "uid": POD.uid},
        "sequence": signer.next_sequence(),
        "expires": time.time() + 60,
    }
    frame = {
        "type": "config",
        "namespace": POD.namespace,
        "name": "fuzz",
        "revision": "sha256:0",
        "data": {"k": "v"},
        "binaryData": {},
    }
    return head, frame


def not_of(kind: type | tuple[type, ...]) -> st.SearchStrategy[Any]:
    return json_values.filter(lambda v: not isinstance(v, kind) or isinstance(v, bool))


BROKEN_HEAD: dict[str, st.SearchStrategy[Any]] = {
    "v": json_values.filter(lambda v: v != 2 or isinstance(v, bool)),
    "pod": json_values,  # never this pod's exact identity
    "sequence": not_of(int),
    "expires": not_of((int, float)),
}
BROKEN_FRAME: dict[str, st.SearchStrategy[Any]] = {
    "type": json_values.filter(lambda v: v != "config"),
    "namespace": not_of(str) | st.just("Not_A_Namespace"),
    "name": not_of(str) | st.just(""),
    "revision": not_of(str) | st.just(""),
    "data": not_of(dict) | st.dictionaries(st.text(max_size=5), not_of(str), min_size=1),
    "binaryData": not_of(dict) | st.dictionaries(st.just("b"), st.just("!!"), min_size=1),
}


def check_refused(sidecar: SidecarProcess, body: bytes | Envelope) -> None:
    answer = sidecar.push(body)
    assert 400 <= answer.status < 500, answer
    assert answer.reason in REJECT_REASONS, answer
    assert isinstance(answer.body["error"]["message"], str)


@FUZZ
@given(body=st.binary(max_size=512))
def test_random_bytes(fuzzed: tuple[SidecarProcess, Signer], body: bytes) -> None:
    check_refused(fuzzed[0], body)


@FUZZ
@given(obj=st.dictionaries(st.sampled_from(["payload", "signature", "x"]), json_values))
def test_random_json_bodies(fuzzed: tuple[SidecarProcess, Signer], obj: dict[str, Any]) -> None:
    check_refused(fuzzed[0], json.dumps(obj).encode())


@FUZZ
@given(payload=json_values.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=256))
def test_signed_garbage_payloads(fuzzed: tuple[SidecarProcess, Signer], payload: bytes) -> None:
    sidecar, signer = fuzzed
    check_refused(sidecar, signer.sign(payload))


@FUZZ
@given(header=st.text(max_size=120))
def test_random_signature_headers(fuzzed: tuple[SidecarProcess, Signer], header: str) -> None:
    sidecar, signer = fuzzed
    envelope = signer.body({"k": "v"}, name="fuzz-header")
    # http.client refuses header values with line breaks; keep to what it sends.
    value = "".join(c for c in header if c.isprintable() and c.isascii()).strip()
    check_refused(sidecar, Envelope(envelope.body, value))


@FUZZ
@given(
    data=st.data(),
    field=st.sampled_from(
        [f"head.{k}" for k in BROKEN_HEAD] + [f"frame.{k}" for k in BROKEN_FRAME]
    ),
)
def test_envelopes_with_one_broken_field(
    fuzzed: tuple[SidecarProcess, Signer], data: st.DataObject, field: str
) -> None:
    sidecar, signer = fuzzed
    head, frame = valid_lines(signer)
    line, _, key = field.partition(".")
    if line == "head":
        head[key] = data.draw(BROKEN_HEAD[key])
    else:
        frame[key] = data.draw(BROKEN_FRAME[key])
    raw = json.dumps(head).encode() + b"\n" + json.dumps(frame).encode()
    check_refused(sidecar, signer.sign(raw))


def test_the_valid_lines_are_accepted(fuzzed: tuple[SidecarProcess, Signer]) -> None:
    """The baseline of the broken-field property: unbroken, the same lines are applied."""
    sidecar, signer = fuzzed
    head, frame = valid_lines(signer)
    raw = json.dumps(head).encode() + b"\n" + json.dumps(frame).encode()
    assert sidecar.push(signer.sign(raw)).status == 200


frames = st.one_of(
    st.binary(max_size=64).map(lambda b: struct.pack(">I", len(b)) + b),
    json_values.map(lambda v: json.dumps(v).encode()).map(lambda b: struct.pack(">I", len(b)) + b),
    st.dictionaries(
        st.sampled_from(
            ["type", "version", "namespace", "name", "revision", "error", "configmaps"]
        ),
        json_values | st.sampled_from(["hello", "ack", "nack", "config", "error", "welcome"]),
    )
    .map(lambda d: json.dumps(d).encode())
    .map(lambda b: struct.pack(">I", len(b)) + b),
    st.binary(max_size=16),  # not even a whole frame
    st.just(struct.pack(">I", p.MAX_FRAME_BYTES + 1)),
)


@FUZZ
@given(hello_first=st.booleans(), sent=st.lists(frames, max_size=4))
def test_random_socket_frames(
    fuzzed: tuple[SidecarProcess, Signer], hello_first: bool, sent: list[bytes]
) -> None:
    sidecar, _ = fuzzed
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(sidecar.socket))
        if hello_first:
            sock.sendall(p.encode(p.Hello(client="fuzz")))
        try:
            sock.sendall(b"".join(sent))
            sock.shutdown(socket.SHUT_WR)  # the relay sees the end of the stream
        except (BrokenPipeError, ConnectionResetError):
            pass  # the relay already closed after an error frame
        try:
            while (message := p.recv_message(sock)) is not None:
                assert isinstance(
                    message, p.Welcome | p.ConfigSnapshot | p.Heartbeat | p.ErrorReply
                )
        except ConnectionResetError:
            pass
    # The relay and the HTTP API still serve.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(sidecar.socket))
        sock.sendall(p.encode(p.Hello(client="probe")))
        assert isinstance(p.recv_message(sock), p.Welcome)
    assert sidecar.get("/healthz").status == 200
