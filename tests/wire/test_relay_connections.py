"""The relay's connections at the edges of a byte stream: frames split across reads (a hello
byte by byte, an ACK in pieces) are joined; an ACK read together with a bad frame is recorded
before that connection alone is refused and closed; a client cut off inside a frame is told
so; a connection that sends no hello is closed after ``hello_timeout``; heartbeats reach every
welcomed client; and a client that stops reading, on connecting or after a publication, is
dropped after ``write_timeout`` without holding up the others, nor ``aclose``."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hotconf_wire import protocol as p
from hotconf_wire.relay import Relay

REF = p.ConfigMapRef("default", "app")
#: A config near the ConfigMap limit: two frames of it overfill a Unix socket's buffer (about
#: 208 KiB on Linux) and the transport's high-water mark (64 KiB) behind it.
BIG = "x" * (900 * 1024)


def snapshot(value: str, name: str = "app") -> p.ConfigSnapshot:
    data = {"v": value}
    return p.ConfigSnapshot("default", name, p.compute_revision(data), data)


class Client:
    """A raw wire-protocol client on a non-blocking socket, driven from the test's loop."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.decoder = p.FrameDecoder()
        self.messages: list[p.Message] = []

    @classmethod
    async def connect(cls, path: Path, *, hello: bool = True) -> Client:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, str(path))
        client = cls(sock)
        if hello:
            await client.send(p.encode(p.Hello(client="test", pid=1)))
        return client

    async def send(self, data: bytes) -> None:
        await asyncio.get_running_loop().sock_sendall(self.sock, data)

    async def receive(self) -> p.Message | None:
        """The next message; ``None`` at the end of the stream (or a reset)."""
        loop = asyncio.get_running_loop()
        while not self.messages:
            try:
                chunk = await asyncio.wait_for(loop.sock_recv(self.sock, 1 << 20), 10)
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            self.messages += self.decoder.feed(chunk)
        return self.messages.pop(0)

    async def receive_until_closed(self) -> list[p.Message]:
        got = []
        while (message := await self.receive()) is not None:
            got.append(message)
        return got

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[Relay]:
    relay = Relay(tmp_path / "s.sock", hello_timeout=0.5, write_timeout=0.5)
    await relay.start()
    try:
        yield relay
    finally:
        await relay.aclose()


async def welcomed(relay: Relay) -> Client:
    client = await Client.connect(relay.path)
    assert isinstance(await client.receive(), p.Welcome)
    return client


async def until(condition: object, what: str) -> None:
    """Wait for ``condition()`` to hold (an event to wait for, not a timing to assert)."""
    assert callable(condition)
    try:
        async with asyncio.timeout(10):
            while not condition():  # noqa: ASYNC110 (no event to wait on)
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"still waiting, after 10 s, for this: {what}") from None


async def test_a_hello_and_an_ack_split_across_reads_are_joined(relay: Relay) -> None:
    client = await Client.connect(relay.path, hello=False)
    for byte in p.encode(p.Hello(client="split", pid=7)):
        await client.send(bytes([byte]))
        await asyncio.sleep(0.001)  # each byte its own read
    assert isinstance(await client.receive(), p.Welcome)
    [status] = relay.clients()
    assert (status.client, status.pid) == ("split", 7)
    publication = relay.send(snapshot("1"))
    sent = await client.receive()
    assert isinstance(sent, p.ConfigSnapshot)
    ack = p.encode(p.Ack(sent.namespace, sent.name, sent.revision))
    for piece in (ack[:2], ack[2:9], ack[9:]):  # inside the header, then inside the body
        await client.send(piece)
        await asyncio.sleep(0.01)
    [verdict] = await publication.verdicts(5)
    assert (verdict.result, verdict.revision) == ("ack", sent.revision)
    client.close()


async def test_an_ack_read_with_a_bad_frame_counts_then_only_that_client_is_closed(
    relay: Relay,
) -> None:
    bad, good = await welcomed(relay), await welcomed(relay)
    publication = relay.send(snapshot("1"))
    for client in (bad, good):
        assert isinstance(await client.receive(), p.ConfigSnapshot)
    revision = publication.snapshot.revision
    ack = p.encode(p.Ack("default", "app", revision))
    await bad.send(ack + struct.pack(">I", 5) + b"{oops")  # one write: likely one read
    await good.send(ack)
    verdicts = await publication.verdicts(5)
    assert [v.result for v in verdicts] == ["ack", "ack"]
    rest = await bad.receive_until_closed()
    assert [type(m) for m in rest] == [p.ErrorReply]
    assert isinstance(rest[0], p.ErrorReply) and rest[0].code == "malformed_frame"
    await until(lambda: len(relay.clients()) == 1, "the bad client is gone")
    # The other client is served as before: a new revision, its ACK.
    publication = relay.send(snapshot("2"))
    sent = await good.receive()
    assert isinstance(sent, p.ConfigSnapshot) and sent.revision == publication.snapshot.revision
    await good.send(p.encode(p.Ack(sent.namespace, sent.name, sent.revision)))
    assert [v.result for v in await publication.verdicts(5)] == ["ack"]
    bad.close()
    good.close()


async def test_a_client_cut_off_inside_a_frame_is_told_so(relay: Relay) -> None:
    client = await welcomed(relay)
    await client.send(p.encode(p.Heartbeat())[:6])
    client.sock.shutdown(socket.SHUT_WR)
    [reply] = await client.receive_until_closed()
    assert isinstance(reply, p.ErrorReply)
    assert (reply.code, reply.message) == (
        "malformed_frame",
        "connection closed after 2 of 20 frame bytes",
    )
    await until(lambda: not relay.clients(), "the client is gone")
    client.close()


async def test_a_connection_without_hello_is_closed_after_the_hello_timeout(
    relay: Relay,
) -> None:
    silent = await Client.connect(relay.path, hello=False)
    assert await silent.receive_until_closed() == []  # closed, no error frame
    served = await welcomed(relay)  # the relay still serves
    assert [c.client for c in relay.clients()] == ["test"]
    silent.close()
    served.close()


async def test_heartbeats_reach_every_welcomed_client(tmp_path: Path) -> None:
    async with Relay(tmp_path / "s.sock", heartbeat_interval=0.05) as relay:
        clients = [await welcomed(relay) for _ in range(2)]
        for client in clients:
            assert isinstance(await client.receive(), p.Heartbeat)
            assert isinstance(await client.receive(), p.Heartbeat)
            client.close()


async def test_a_client_that_stops_reading_is_dropped_and_holds_up_no_other(
    relay: Relay,
) -> None:
    stuck, reader = await welcomed(relay), await welcomed(relay)
    stuck_id, reader_id = (c.id for c in relay.clients())
    answered: list[str] = []

    async def read_and_ack() -> None:
        while (message := await reader.receive()) is not None:
            if isinstance(message, p.ConfigSnapshot):
                ack = p.Ack(message.namespace, message.name, message.revision)
                await reader.send(p.encode(ack))
                answered.append(message.revision)

    acking = asyncio.create_task(read_and_ack())
    try:
        publications = [relay.send(snapshot(BIG + str(n))) for n in range(3)]
        await until(lambda: len(answered) == 3, "the reading client took every revision")
        verdicts = await publications[-1].verdicts(5)
        by_id = {v.id: v.result for v in verdicts}
        assert by_id[reader_id] == "ack"
        assert [c.id for c in relay.clients()] == [reader_id]  # the stuck one was dropped
        assert stuck_id not in by_id or by_id[stuck_id] != "ack"
        # What it had not read is cut off, then the connection ends.
        await stuck.receive_until_closed()
    finally:
        acking.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await acking
        stuck.close()
        reader.close()


async def test_a_client_that_reads_nothing_after_hello_is_dropped(relay: Relay) -> None:
    await relay.publish(snapshot(BIG + "a", "a"))
    await relay.publish(snapshot(BIG + "b", "b"))
    stuck = await Client.connect(relay.path)  # both configs are sent at once; it reads none
    await until(lambda: bool(relay.clients()), "the client said hello")
    await until(lambda: not relay.clients(), "the client is dropped after write_timeout")
    reader = await welcomed(relay)  # the relay still serves
    got = [await reader.receive(), await reader.receive()]
    assert sorted(m.name for m in got if isinstance(m, p.ConfigSnapshot)) == ["a", "b"]
    stuck.close()
    reader.close()


async def test_aclose_ends_with_a_client_that_does_not_read(tmp_path: Path) -> None:
    relay = Relay(tmp_path / "s.sock", write_timeout=60)
    await relay.start()
    stuck = await welcomed(relay)
    relay.send(snapshot(BIG + "1"))
    relay.send(snapshot(BIG + "2"))
    reader = await welcomed(relay)
    reading = asyncio.create_task(reader.receive_until_closed())
    await asyncio.wait_for(relay.aclose(), 5)
    assert not relay.clients()
    got = await reading
    assert isinstance(got[-1], p.ErrorReply) and got[-1].code == "shutting_down"
    # Cut off once the grace ran out: not all it was sent reaches it, though the loop runs on.
    cut = await stuck.receive_until_closed()
    assert len([m for m in cut if isinstance(m, p.ConfigSnapshot)]) < 2
    assert not any(isinstance(m, p.ErrorReply) for m in cut)
    stuck.close()
    reader.close()
