"""Operating the sidecar: /healthz, /readyz and /metrics answer as documented; SIGTERM refuses
new pushes, lets the running one answer, tells relay clients it is going away, removes the socket
and exits 0; bad settings exit 2 with a message; every setting is in --help; logs are JSON lines
that never carry config values."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from sidecar_harness import POD, SCRIPT, Answer, RawClient, SidecarProcess, Signer

import hotconf_sidecar
from hotconf_wire import protocol as p


def test_package_exports_nothing_but_the_console_script() -> None:
    assert hotconf_sidecar.__all__ == []
    from hotconf_sidecar.__main__ import main

    assert callable(main)


def test_health_ready_and_metrics(sidecar: SidecarProcess, signer: Signer) -> None:
    assert sidecar.get("/healthz") == Answer(200, "ok\n")
    assert sidecar.get("/readyz") == Answer(200, "ready\n")
    client = RawClient(sidecar.socket, name="metered")
    threading.Thread(target=lambda: client.ack(client.next_config())).start()
    reply = sidecar.push(signer.body({"k": "v"}))
    assert reply.body["clients"][0]["result"] == "ack"
    metrics = sidecar.get("/metrics").body
    assert "hotconf_sidecar_clients_connected 1.0" in metrics
    assert 'hotconf_sidecar_pushes_accepted_total{status="applied"} 1.0' in metrics
    assert "hotconf_sidecar_relay_seconds_count 1.0" in metrics
    revision = reply.body["revision"]
    assert (
        f'hotconf_sidecar_applied_revision_info{{name="app",namespace="shop",'
        f'revision="{revision}"}} 1.0'
    ) in metrics
    [sequence_line] = [
        line for line in metrics.splitlines() if line.startswith("hotconf_sidecar_applied_seq")
    ]
    assert float(sequence_line.rpartition(" ")[2]) == float(reply.body["sequence"])
    second = sidecar.push(signer.body({"k": "w"})).body["revision"]
    metrics = sidecar.get("/metrics").body
    assert revision not in metrics and second in metrics  # only the held revision is listed
    client.close()


def test_sigterm_drains_and_exits_zero(sidecar: SidecarProcess, signer: Signer) -> None:
    silent = RawClient(sidecar.socket, name="silent")  # never answers: the push waits 2 s
    answers: list[Answer] = []
    pushing = threading.Thread(target=lambda: answers.append(sidecar.push(signer.body({"k": "v"}))))
    pushing.start()
    assert isinstance(silent.next_config(), p.ConfigSnapshot)  # the push is in flight
    assert sidecar.proc is not None
    sidecar.proc.send_signal(signal.SIGTERM)
    # The loop takes the signal in one of its next turns; uvloop may first accept a connection
    # that arrived at the same moment (that push would be taken, and answered while draining).
    for _ in range(500):
        if sidecar.get("/readyz").status == 503:
            break
        time.sleep(0.01)
    refused = sidecar.push(signer.body({"k": "w"}))
    assert (refused.status, refused.reason) == (503, "unavailable")
    assert sidecar.get("/readyz").status == 503
    pushing.join(10)
    assert answers[0].status == 200
    assert answers[0].body["clients"][0]["result"] == "timeout"
    farewell = p.recv_message(silent.sock)
    assert isinstance(farewell, p.ErrorReply) and farewell.code == "shutting_down"
    assert sidecar.proc.wait(10) == 0
    assert not sidecar.socket.exists()
    silent.close()
    for line in sidecar.logs().splitlines():
        entry = json.loads(line)
        assert {"ts", "level", "logger", "msg"} <= entry.keys()
        assert entry["level"] != "error", entry


def test_bad_settings_exit_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTCONF_")}
    done = subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "--pod-namespace" in done.stderr and "--pod-uid" in done.stderr
    env |= {
        "HOTCONF_POD_NAMESPACE": POD.namespace,
        "HOTCONF_POD_NAME": POD.name,
        "HOTCONF_POD_UID": POD.uid,
    }
    done = subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30)
    assert (done.returncode, "public key is required" in done.stderr) == (2, True)
    done = subprocess.run(
        [str(SCRIPT), "--public-key", "nope", "--listen", "x"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (done.returncode, "HOST:PORT" in done.stderr) == (2, True)
    done = subprocess.run(
        [str(SCRIPT), "--public-key", "nope", "--fsync", "sometimes"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (done.returncode, "--fsync 'sometimes'" in done.stderr) == (2, True)


def test_bad_public_key_exits_1(tmp_path: Path) -> None:
    env = os.environ | {
        "HOTCONF_POD_NAMESPACE": POD.namespace,
        "HOTCONF_POD_NAME": POD.name,
        "HOTCONF_POD_UID": POD.uid,
        "HOTCONF_OPERATOR_PUBLIC_KEY": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
    }
    args = [str(SCRIPT), "--listen", "127.0.0.1:0", "--socket", str(tmp_path / "s.sock"),
            "--state-dir", str(tmp_path / "state")]  # fmt: skip
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert "not an Ed25519 key" in done.stderr


def test_help_documents_every_setting() -> None:
    done = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0
    for env in (
        "HOTCONF_POD_NAMESPACE", "HOTCONF_POD_NAME", "HOTCONF_POD_UID", "HOTCONF_LISTEN",
        "HOTCONF_SOCKET", "HOTCONF_SOCKET_MODE", "HOTCONF_STATE_DIR", "HOTCONF_FSYNC",
        "HOTCONF_OPERATOR_PUBLIC_KEY_FILE", "HOTCONF_OPERATOR_PUBLIC_KEY", "HOTCONF_ACK_TIMEOUT",
        "HOTCONF_FILES_DIR", "HOTCONF_NOTIFY_URL", "HOTCONF_NOTIFY_SIGNAL",
        "HOTCONF_NOTIFY_PID_FILE", "HOTCONF_NOTIFY_PROCESS", "HOTCONF_LOG_LEVEL",
        "HOTCONF_EVENT_LOOP",
    ):  # fmt: skip
        assert env in done.stdout
        assert env in (Path(__file__).parents[2] / "docs" / "sidecar.md").read_text()
