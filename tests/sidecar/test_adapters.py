"""Adapters for applications without the library: the files adapter swaps a ConfigMap's whole
key set at once (a reader never sees half a set, dropped keys disappear, binary keys are written
as bytes), the notify URL gets the revision (never values), the signal reaches the process named
by the pid file, and each adapter reports ack or nack in the push answer."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from sidecar_harness import SidecarProcess, Signer


def read_set(directory: Path) -> dict[str, str] | None:
    """Read every key through one resolution of ``..data``; None if it moved meanwhile."""
    try:
        fd = os.open(directory / "..data", os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return None
    try:
        result = {}
        for name in os.listdir(fd):
            with open(name, "rb", opener=lambda p, f: os.open(p, f, dir_fd=fd)) as file:
                result[name] = file.read().decode()
        return result
    except FileNotFoundError:
        return None  # the old set was removed after the swap; a reader retries
    finally:
        os.close(fd)


def test_files_adapter_swaps_whole_sets(tmp_path: Path, signer: Signer) -> None:
    files = tmp_path / "files"
    sidecar = SidecarProcess(tmp_path, signer, "--files-dir", str(files)).start()
    target = files / "app"
    seen: list[dict[str, str]] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            got = read_set(target)
            if got:
                seen.append(got)

    thread = threading.Thread(target=reader)
    try:
        reply = sidecar.push(signer.body(dict.fromkeys("abc", "0" * 1000)))
        assert reply.body["clients"] == [
            {"id": "adapter:files", "client": "adapter:files", "pid": None,
             "revision": reply.body["revision"], "result": "ack", "message": ""}
        ]  # fmt: skip
        thread.start()
        for n in range(1, 41):
            keys = ("a", "b", "c") if n % 2 else ("a", "b")
            assert sidecar.push(signer.body({k: str(n) * 1000 for k in keys})).status == 200
        stop.set()
        thread.join(10)
        assert len(seen) > 10
        for got in seen:
            values = set(got.values())
            assert len(values) == 1, f"a reader saw a mixed set: {sorted(got)}"
            value = values.pop()
            n = int(value[: len(value) // 1000])
            expected = ["a", "b", "c"] if n % 2 or n == 0 else ["a", "b"]
            assert sorted(got) == expected, f"revision {n} seen with keys {sorted(got)}"
        # The final set, through the key symlinks a kubelet-style reader uses.
        assert sorted(p.name for p in target.iterdir() if not p.name.startswith("..")) == [
            "a",
            "b",
        ]
        assert (target / "a").read_text() == "40" * 1000
        assert not (target / "c").exists()
        hidden = [p.name for p in target.iterdir() if p.name.startswith("..")]
        assert len(hidden) == 2  # ..data and the one directory it points to
    finally:
        stop.set()
        if thread.is_alive():
            thread.join(10)
        sidecar.stop()


class _Recorder(BaseHTTPRequestHandler):
    bodies: ClassVar[list[dict[str, str]]] = []
    status: ClassVar[int] = 204
    #: Answers to give first, one per request, before ``status``.
    first: ClassVar[list[int]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        type(self).bodies.append(json.loads(self.rfile.read(length)))
        first = type(self).first
        self.send_response(first.pop(0) if first else type(self).status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def notify_server() -> Iterator[tuple[str, type[_Recorder]]]:
    recorder = type("Recorder", (_Recorder,), {"bodies": [], "status": 204, "first": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), recorder)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/reload", recorder
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_notify_url_gets_the_revision_not_the_values(
    tmp_path: Path, signer: Signer, notify_server: tuple[str, type[_Recorder]]
) -> None:
    url, recorder = notify_server
    sidecar = SidecarProcess(tmp_path, signer, "--notify-url", url).start()
    try:
        reply = sidecar.push(signer.body({"secret.conf": "password=hunter2"}))
        [notified] = reply.body["clients"]
        assert (notified["id"], notified["result"]) == ("adapter:notify-url", "ack")
        assert recorder.bodies == [
            {"namespace": "shop", "name": "app", "revision": reply.body["revision"]}
        ]
        recorder.status = 500
        reply = sidecar.push(signer.body({"secret.conf": "password=hunter3"}))
        [notified] = reply.body["clients"]
        assert notified["result"] == "nack"
        assert "500" in notified["message"]
        assert "hunter" not in sidecar.logs()
    finally:
        sidecar.stop()


def test_notify_url_is_tried_again_until_the_application_listens(
    tmp_path: Path, signer: Signer
) -> None:
    """An application still starting (nothing listens yet) gets the revision once it listens,
    within the ACK deadline, and is ACKed: it does not NACK and halt a staged rollout."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sidecar = SidecarProcess(
        tmp_path, signer, "--notify-url", f"http://127.0.0.1:{port}/reload"
    ).start()
    recorder: type[_Recorder] = type(
        "Recorder", (_Recorder,), {"bodies": [], "status": 204, "first": []}
    )
    replies: list[Any] = []
    pushing = threading.Thread(target=lambda: replies.append(sidecar.push(signer.body({"k": "v"}))))
    server: ThreadingHTTPServer | None = None
    try:
        pushing.start()
        time.sleep(0.6)  # the sidecar's first attempts find the port closed
        server = ThreadingHTTPServer(("127.0.0.1", port), recorder)
        serving = threading.Thread(target=server.serve_forever)
        serving.start()
        pushing.join(15)
        [notified] = replies[0].body["clients"]
        assert (notified["id"], notified["result"]) == ("adapter:notify-url", "ack"), notified
        assert len(recorder.bodies) == 1
    finally:
        pushing.join(15)
        if server is not None:
            server.shutdown()
            server.server_close()
            serving.join()
        sidecar.stop()


def test_notify_url_retries_5xx_and_takes_a_4xx_as_the_verdict(
    tmp_path: Path, signer: Signer, notify_server: tuple[str, type[_Recorder]]
) -> None:
    url, recorder = notify_server
    sidecar = SidecarProcess(tmp_path, signer, "--notify-url", url).start()
    try:
        recorder.first[:] = [503, 502]
        [notified] = sidecar.push(signer.body({"k": "1"})).body["clients"]
        assert notified["result"] == "ack", notified
        assert len(recorder.bodies) == 3  # two refusals, then the ACK
        recorder.status = 400
        started = time.monotonic()
        [notified] = sidecar.push(signer.body({"k": "2"})).body["clients"]
        assert notified["result"] == "nack" and "answered 400" in notified["message"]
        assert len(recorder.bodies) == 4  # no second try: the application's own verdict
        assert time.monotonic() - started < 1.5
    finally:
        sidecar.stop()


_TRAP = """
import signal, sys, time, pathlib
out = pathlib.Path(sys.argv[1])
signal.signal(signal.SIGHUP, lambda *_: out.write_text(out.read_text() + "HUP\\n"))
out.write_text("")
pathlib.Path(sys.argv[2]).write_text(str(__import__("os").getpid()))
time.sleep(60)
"""


def test_signal_reaches_the_process_in_the_pid_file(tmp_path: Path, signer: Signer) -> None:
    out, pid_file = tmp_path / "trap.out", tmp_path / "app.pid"
    app = subprocess.Popen([sys.executable, "-c", _TRAP, str(out), str(pid_file)])
    sidecar = SidecarProcess(
        tmp_path, signer, "--notify-signal", "HUP", "--notify-pid-file", str(pid_file)
    )
    try:
        deadline = time.monotonic() + 10
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        sidecar.start()
        reply = sidecar.push(signer.body({"k": "v"}))
        [signalled] = reply.body["clients"]
        assert (signalled["id"], signalled["result"]) == ("adapter:signal", "ack")
        assert str(app.pid) in signalled["message"]
        deadline = time.monotonic() + 10
        while out.read_text() != "HUP\n":
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.02)
        pid_file.write_text("not a pid")
        reply = sidecar.push(signer.body({"k": "w"}))
        assert reply.body["clients"][0]["result"] == "nack"
    finally:
        app.kill()
        app.wait()
        if sidecar.proc is not None:
            sidecar.stop()


def test_files_adapter_failure_is_a_nack(tmp_path: Path, signer: Signer) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    sidecar = SidecarProcess(tmp_path, signer, "--files-dir", str(blocker)).start()
    try:
        reply = sidecar.push(signer.body({"k": "v"}))
        assert reply.status == 200
        [files] = reply.body["clients"]
        assert (files["id"], files["result"]) == ("adapter:files", "nack")
        assert "cannot write files" in files["message"]
    finally:
        sidecar.stop()


def test_an_adapters_verdict_is_kept_for_the_operators_later_questions(
    tmp_path: Path, signer: Signer, notify_server: tuple[str, type[_Recorder]]
) -> None:
    """A notify URL that refused a revision is still reported refusing it in an ``unchanged``
    answer and in ``/v2/state`` (what the operator reads after a restart), and is not called
    again for that revision; a new revision is asked about afresh."""
    url, recorder = notify_server
    recorder.status = 422
    sidecar = SidecarProcess(tmp_path, signer, "--notify-url", url).start()
    try:
        first = sidecar.push(signer.body({"k": "bad"})).body
        [refused] = first["clients"]
        assert (refused["id"], refused["result"]) == ("adapter:notify-url", "nack")
        again = sidecar.push(signer.body({"k": "bad"})).body  # the same revision, a new sequence
        assert again["status"] == "unchanged"
        assert again["clients"] == [refused]
        [held] = sidecar.get("/v2/state").body["configmaps"]
        assert held["clients"] == [refused]
        assert len(recorder.bodies) == 1

        recorder.status = 204
        fixed = sidecar.push(signer.body({"k": "good"})).body
        assert [c["result"] for c in fixed["clients"]] == ["ack"]
        [held] = sidecar.get("/v2/state").body["configmaps"]
        assert [(c["id"], c["result"], c["revision"]) for c in held["clients"]] == [
            ("adapter:notify-url", "ack", fixed["revision"])
        ]
    finally:
        sidecar.stop()
