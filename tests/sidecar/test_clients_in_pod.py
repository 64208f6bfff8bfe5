"""Several clients in one pod: a push is relayed to each subscriber, and the answer reports each
client's ACK, NACK (with its message) or timeout; a client connecting later gets the current
config at once; zero clients still means "applied"; the socket has the configured permissions."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

from sidecar_harness import RawClient, SidecarProcess, Signer

from hotconf_wire.protocol import ConfigMapRef


def test_ack_nack_and_timeout_are_reported_per_client(
    sidecar: SidecarProcess, signer: Signer
) -> None:
    app = ConfigMapRef("shop", "app")
    acker = RawClient(sidecar.socket, app, name="acker", pid=101)
    nacker = RawClient(sidecar.socket, name="nacker", pid=102)  # subscribes to everything
    silent = RawClient(sidecar.socket, app, name="silent", pid=103)
    other = RawClient(sidecar.socket, ConfigMapRef("shop", "other"), name="other", pid=104)

    def answer() -> None:
        acker.ack(acker.next_config())
        nacker.nack(nacker.next_config(), "port: must be a number")
        silent.next_config()

    worker = threading.Thread(target=answer)
    worker.start()
    reply = sidecar.push(signer.body({"app.yaml": "port: x\n"}))
    worker.join(10)
    assert reply.status == 200
    assert reply.body["status"] == "applied"
    results = {c["client"]: (c["pid"], c["result"], c["message"]) for c in reply.body["clients"]}
    assert results == {
        "acker": (101, "ack", ""),
        "nacker": (102, "nack", "port: must be a number"),
        "silent": (103, "timeout", ""),
    }
    [held] = sidecar.get("/v2/state").body["configmaps"]
    assert {c["client"]: c["result"] for c in held["clients"]} == {
        "acker": "ack",
        "nacker": "nack",
        "silent": "pending",
    }
    assert all(c["revision"] == reply.body["revision"] for c in held["clients"])

    # The same revision again (higher sequence): not re-sent, answered with current verdicts.
    again = sidecar.push(signer.body({"app.yaml": "port: x\n"}))
    assert again.body["status"] == "unchanged"
    assert {c["client"]: c["result"] for c in again.body["clients"]} == {
        "acker": "ack",
        "nacker": "nack",
        "silent": "pending",
    }
    for client in (acker, nacker, silent, other):
        client.close()


def test_late_client_gets_the_current_config(sidecar: SidecarProcess, signer: Signer) -> None:
    sidecar.push(signer.body({"k": "1"}))
    current = sidecar.push(signer.body({"k": "2"})).body
    late = RawClient(sidecar.socket, name="late")
    got = late.next_config()
    assert (got.revision, dict(got.data)) == (current["revision"], {"k": "2"})
    late.ack(got)
    late.close()


def test_zero_clients_means_applied_with_no_clients(
    sidecar: SidecarProcess, signer: Signer
) -> None:
    reply = sidecar.push(signer.body({"k": "1"}))
    assert (reply.status, reply.body["status"], reply.body["clients"]) == (200, "applied", [])


def test_socket_is_owner_only_by_default(sidecar: SidecarProcess) -> None:
    mode = sidecar.socket.stat().st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600
    assert sidecar.socket.stat().st_uid == os.getuid()


def test_socket_mode_is_configurable(tmp_path: Path, signer: Signer) -> None:
    sidecar = SidecarProcess(tmp_path, signer, "--socket-mode", "0660").start()
    try:
        assert stat.S_IMODE(sidecar.socket.stat().st_mode) == 0o660
        assert sidecar.stop() == 0
    finally:
        if sidecar.proc is not None and sidecar.proc.poll() is None:
            sidecar.kill()
