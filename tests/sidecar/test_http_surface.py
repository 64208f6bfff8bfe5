"""The sidecar's HTTP server holds its limits on raw HTTP: broken requests get 400, huge heads
431 (whole or trickled in), oversized chunked pushes 413 and a closed connection, unknown paths
404, wrong methods 405, ``HEAD`` the head of its answer only; kept-alive connections serve
several requests; pipelined requests are answered in order; ``Expect: 100-continue`` gets
``100 Continue`` before the body is sent; random bytes on the TCP port never stop it."""

from __future__ import annotations

import errno
import json
import re
import socket
import time
from typing import BinaryIO

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sidecar_harness import SidecarProcess, Signer

from hotconf_wire.envelope import MAX_BODY_BYTES


def exchange(sidecar: SidecarProcess, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", sidecar.port), timeout=10) as conn:
        try:
            conn.sendall(raw)
            conn.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except OSError as exc:  # shutdown() once the sidecar has refused and reset the connection
            if exc.errno != errno.ENOTCONN:
                raise
        reply = b""
        try:
            while chunk := conn.recv(65536):
                reply += chunk
        except ConnectionResetError:
            pass
        return reply


def test_broken_request_line_is_400(sidecar: SidecarProcess) -> None:
    reply = exchange(sidecar, b"HELLO\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400"), reply
    assert json.loads(reply.partition(b"\r\n\r\n")[2])["error"]["reason"] == "malformed"


def test_huge_head_is_refused(sidecar: SidecarProcess) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 400_000 + b"\r\n\r\n"
    reply = exchange(sidecar, head)
    assert reply.startswith(b"HTTP/1.1 431"), reply[:100]


def test_trickled_huge_head_is_refused(sidecar: SidecarProcess) -> None:
    with socket.create_connection(("127.0.0.1", sidecar.port), timeout=10) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: ")
        try:
            for _ in range(64):  # 64 KiB of one header value, 1 KiB a write
                conn.sendall(b"a" * 1024)
                time.sleep(0.005)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before the end
        reply = b""
        try:
            while data := conn.recv(65536):
                reply += data
        except ConnectionResetError:
            pass
    assert reply.startswith(b"HTTP/1.1 431"), reply[:100]


def test_pipelined_requests_are_answered_in_order(sidecar: SidecarProcess) -> None:
    reply = exchange(
        sidecar,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /v2/push HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
        b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", reply)
    assert statuses == [b"200", b"401", b"200", b"404"], reply
    assert reply.index(b"ok\n") < reply.index(b"unsigned") < reply.index(b"ready\n")


def test_head_gets_the_head_only(sidecar: SidecarProcess) -> None:
    reply = exchange(sidecar, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 405"), reply
    assert b"content-length: " in head
    assert body == b""
    assert "Traceback" not in sidecar.logs()


def test_oversized_chunked_push_is_refused(sidecar: SidecarProcess) -> None:
    chunk = b"a" * (1024 * 1024)
    head = b"POST /v2/push HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    with socket.create_connection(("127.0.0.1", sidecar.port), timeout=10) as conn:
        conn.sendall(head)
        try:
            for _ in range(MAX_BODY_BYTES // len(chunk) + 2):
                conn.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the sidecar answered and closed before taking the rest
        reply = b""
        try:
            while data := conn.recv(65536):
                reply += data
        except ConnectionResetError:
            pass
    assert reply.startswith(b"HTTP/1.1 413"), reply[:100]
    assert sidecar.get("/healthz").status == 200


def test_unknown_path_and_wrong_method(sidecar: SidecarProcess) -> None:
    missing = sidecar.get("/nope")
    assert (missing.status, missing.reason) == (404, "not_found")
    wrong = sidecar.request("GET", "/v2/push")
    assert (wrong.status, wrong.reason) == (405, "method_not_allowed")
    assert sidecar.request("POST", "/healthz", b"{}").status == 405


def read_answer(reader: BinaryIO) -> tuple[bytes, dict[bytes, bytes], bytes]:
    """One answer from ``reader``: its status line, its headers (names lowercased) and body."""
    status = reader.readline()
    assert status.endswith(b"\r\n"), f"no status line, got {status!r}"
    headers: dict[bytes, bytes] = {}
    while (line := reader.readline()) != b"\r\n":
        assert line.endswith(b"\r\n"), f"the head ended early: {line!r}"
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    body = reader.read(int(headers[b"content-length"]))
    return status.rstrip(b"\r\n"), headers, body


def test_expect_continue_is_answered_before_the_body_on_a_kept_alive_connection(
    sidecar: SidecarProcess, signer: Signer
) -> None:
    # A raw socket: http.client reads past 1xx answers, and reconnects quietly when the server
    # closes, so it could see neither a missing ``100 Continue`` nor a connection not kept alive.
    with (
        socket.create_connection(("127.0.0.1", sidecar.port), timeout=10) as conn,
        conn.makefile("rb") as reader,
    ):
        for n in range(3):
            envelope = signer.body({"k": str(n)})
            body = envelope.body
            conn.sendall(
                b"POST /v2/push HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Hotconf-Signature: %s\r\n"
                % str(envelope.signature).encode()
                + b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % len(body)
            )
            conn.settimeout(5)  # the interim answer comes at once, or never
            try:
                interim = reader.readline() + reader.readline()
            except TimeoutError:
                pytest.fail(f"push {n}: no interim answer in 5 s before the body was sent")
            conn.settimeout(10)
            assert interim == b"HTTP/1.1 100 Continue\r\n\r\n", f"push {n}: {interim!r}"
            conn.sendall(body)
            status, headers, answer = read_answer(reader)
            assert status == b"HTTP/1.1 200 OK", (n, status, answer)
            assert b"connection" not in headers, (n, headers)
            assert json.loads(answer)["status"] == "applied", (n, answer)
        # Without the header, no interim answer: the final one comes first.
        envelope = signer.body({"k": "plain"})
        conn.sendall(
            b"POST /v2/push HTTP/1.1\r\nHost: x\r\nHotconf-Signature: %s\r\n"
            % str(envelope.signature).encode()
            + b"Content-Length: %d\r\n\r\n" % len(envelope.body)
            + envelope.body
        )
        status, _, answer = read_answer(reader)
        assert status == b"HTTP/1.1 200 OK", (status, answer)
        assert json.loads(answer)["status"] == "applied", answer
        conn.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_answer(reader)[::2] == (b"HTTP/1.1 200 OK", b"ready\n")


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    raw=st.binary(max_size=300)
    | st.builds(
        lambda method, path, headers, body: (
            method + b" " + path + b" HTTP/1.1\r\n" + headers + b"\r\n\r\n" + body
        ),
        st.sampled_from([b"GET", b"POST", b"PUT", b"\x00", b""]),
        st.sampled_from([b"/v2/push", b"/v2/state", b"/metrics", b"*", b"/%ff", b""]),
        st.binary(max_size=80),
        st.binary(max_size=80),
    )
)
def test_random_bytes_on_the_port(sidecar: SidecarProcess, raw: bytes) -> None:
    reply = exchange(sidecar, raw)
    if raw.strip(b"\r\n") == b"":
        # Nothing but the CR and LF that HTTP allows before a request: no request, no answer.
        assert reply == b"", reply[:200]
    else:
        # Every other input is a request, whole or broken, and gets at least one answer.
        assert reply.startswith(b"HTTP/1.1 "), reply[:200]
        statuses = [int(s) for s in re.findall(rb"HTTP/1\.1 (\d{3}) ", reply)]
        assert all(s < 500 or s == 503 for s in statuses), reply[:200]
    assert sidecar.get("/healthz").status == 200
