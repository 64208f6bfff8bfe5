"""The relay server (shared by the sidecar and `hotconf dev`): hello/welcome, snapshots to
subscribers and late joiners, verdicts per client, bad frames answered with a named error and a
closed connection while the relay keeps serving, and stale socket files handled safely."""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path

import pytest

from hotconf.testing import FakeRelay, snapshot
from hotconf_wire import protocol as p
from hotconf_wire.errors import RelayError
from hotconf_wire.relay import Relay


def connect(path: Path, *refs: p.ConfigMapRef, version: int = 1) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(str(path))
    sock.sendall(p.encode(p.Hello(configmaps=refs, client="test", pid=1, version=version)))
    return sock


def test_late_client_gets_current_config_and_acks(tmp_path: Path) -> None:
    with FakeRelay(tmp_path / "s.sock") as relay:
        relay.publish({"a.yaml": "x: 1"})
        sock = connect(relay.path)
        assert isinstance(p.recv_message(sock), p.Welcome)
        first = p.recv_message(sock)
        assert isinstance(first, p.ConfigSnapshot)
        assert first.data["a.yaml"] == "x: 1"
        sock.sendall(p.encode(p.Ack(first.namespace, first.name, first.revision)))
        new = snapshot({"a.yaml": "x: 2"})
        import threading

        def answer() -> None:
            got = p.recv_message(sock)
            assert isinstance(got, p.ConfigSnapshot)
            sock.sendall(p.encode(p.Nack(got.namespace, got.name, got.revision, "x too big")))

        t = threading.Thread(target=answer)
        t.start()
        [verdict] = relay.publish(new, wait=5)
        t.join()
        assert (verdict.result, verdict.message, verdict.revision) == (
            "nack",
            "x too big",
            new.revision,
        )
        sock.close()


def test_unsubscribed_client_gets_nothing_and_silent_client_times_out(tmp_path: Path) -> None:
    with FakeRelay(tmp_path / "s.sock") as relay:
        other = connect(relay.path, p.ConfigMapRef("default", "other"))
        silent = connect(relay.path)
        assert isinstance(p.recv_message(other), p.Welcome)
        assert isinstance(p.recv_message(silent), p.Welcome)
        verdicts = relay.publish({"k": "v"}, wait=0.2)
        assert [v.result for v in verdicts] == ["timeout"]
        other.settimeout(0.2)
        with pytest.raises(TimeoutError):
            p.recv_message(other)
        other.close()
        silent.close()


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (struct.pack(">I", p.MAX_FRAME_BYTES + 1), "frame_too_large"),
        (struct.pack(">I", 5) + b"{oops", "malformed_frame"),
        (p.encode(p.Heartbeat()), "unexpected_message"),
    ],
)
def test_bad_first_frame_gets_error_and_close(tmp_path: Path, raw: bytes, code: str) -> None:
    with FakeRelay(tmp_path / "s.sock") as relay:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(5)
        sock.connect(str(relay.path))
        sock.sendall(raw)
        reply = p.recv_message(sock)
        assert isinstance(reply, p.ErrorReply)
        assert reply.code == code
        assert p.recv_message(sock) is None  # closed
        sock.close()
        good = connect(relay.path)  # the relay still serves
        assert isinstance(p.recv_message(good), p.Welcome)
        good.close()


def test_unknown_version_is_refused(tmp_path: Path) -> None:
    with FakeRelay(tmp_path / "s.sock") as relay:
        sock = connect(relay.path, version=2)
        reply = p.recv_message(sock)
        assert isinstance(reply, p.ErrorReply)
        assert reply.code == "unsupported_version"
        assert "speaks 1" in reply.message
        sock.close()


def test_socket_mode_and_stale_socket(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # a socket file nobody listens on, as a killed relay leaves it
    with FakeRelay(path) as relay:
        assert oct(path.stat().st_mode & 0o777) == oct(0o600)
        with pytest.raises(RelayError, match="already listening"):
            import asyncio

            asyncio.run(Relay(path).start())
        # Let the relay see the probe's connection end before it stops, or the accepted
        # socket is still being set up when the loop closes.
        time.sleep(0.1)
        del relay
    path.write_text("not a socket")
    with pytest.raises(RelayError, match="not a socket"):
        FakeRelay(path).start()


def test_restart_keeps_configs(tmp_path: Path) -> None:
    relay = FakeRelay(tmp_path / "s.sock").start()
    relay.publish({"k": "1"})
    relay.stop()
    relay.start()
    sock = connect(relay.path)
    assert isinstance(p.recv_message(sock), p.Welcome)
    got = p.recv_message(sock)
    assert isinstance(got, p.ConfigSnapshot)
    assert got.data == {"k": "1"}
    sock.close()
    relay.stop()
