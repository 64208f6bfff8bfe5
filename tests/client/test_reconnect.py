"""When the relay goes away the task keeps running on its config; the client reconnects with
backoff when it comes back and resynchronises (the running revision is ACKed again with no
restart). A relay that sends garbage is logged and reconnected to, never a crash."""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from pathlib import Path

import pytest
from hotconf_client_tasks import cooperative, eventually, lines

import hotconf
from hotconf.testing import FakeRelay, running


def verdict_of(relay: FakeRelay) -> tuple[str, str] | None:
    for client in relay.clients():
        for verdict in client.verdicts.values():
            return verdict.revision, verdict.result
    return None


def test_relay_restart_keeps_the_task_and_resyncs_without_restart(tmp_path: Path) -> None:
    log = tmp_path / "log"
    with FakeRelay(tmp_path / "s.sock") as relay:
        relay.publish({"log": str(log), "value": "one"})
        runner = hotconf.ThreadRunner(cooperative, socket=relay.path)
        with running(runner):
            eventually(lambda: lines(log) == ["start one"], what="first generation")
            revision = runner.revision
            relay.stop()
            time.sleep(0.5)
            assert runner.state is hotconf.RunnerState.RUNNING
            relay.start()
            eventually(lambda: verdict_of(relay) == (revision, "ack"), what="re-ACK after restart")
            assert lines(log) == ["start one"]
            [verdict] = relay.publish({"log": str(log), "value": "two"}, wait=10)
            assert verdict.result == "ack"
            eventually(lambda: len(lines(log)) == 3, what="second start")
            assert lines(log) == ["start one", "stop one", "start two"]


class GarbageRelay:
    """A raw Unix socket server that answers every hello with ``reply`` bytes, then closes."""

    def __init__(self, path: Path, reply: bytes) -> None:
        self.path = path
        self.reply = reply
        self.connections = 0
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen()
        self.server.settimeout(0.1)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.serve)
        self.thread.start()

    def serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                conn.recv(65536)
                conn.sendall(self.reply)
                self.connections += 1

    def close(self) -> None:
        self.stopping.set()
        self.thread.join()
        self.server.close()
        self.path.unlink()


@pytest.mark.parametrize(
    ("reply", "words"),
    [
        (struct.pack(">I", 8) + b"not json", "not JSON"),
        (struct.pack(">I", 0xFFFFFFFF), "frame_too_large"),
        (struct.pack(">I", 2) + b"[]", "JSON object"),
        (b"\x00\x00", "broke the protocol"),
    ],
    ids=["not-json", "huge-length", "not-object", "truncated"],
)
def test_garbage_from_the_relay_is_logged_and_reconnected(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, reply: bytes, words: str
) -> None:
    caplog.set_level(logging.INFO, logger="hotconf")
    log = tmp_path / "log"
    path = tmp_path / "s.sock"
    with FakeRelay(path) as relay:
        relay.publish({"log": str(log), "value": "one"})
        runner = hotconf.ThreadRunner(cooperative, socket=path)
        with running(runner):
            eventually(lambda: lines(log) == ["start one"], what="first generation")
            revision = runner.revision
            relay.stop()
            garbage = GarbageRelay(path, reply)
            try:
                eventually(lambda: garbage.connections >= 3, what="repeated reconnects")
            finally:
                garbage.close()
            assert runner.state is hotconf.RunnerState.RUNNING
            relay.start()
            eventually(lambda: verdict_of(relay) == (revision, "ack"), what="resync")
            assert lines(log) == ["start one"]
    text = caplog.text
    if words != "broke the protocol":
        assert words in text
    assert "reconnecting" in text
