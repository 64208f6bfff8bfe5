"""Idle HTTP connections: a connection that sends no complete request head, or no complete body,
within the idle timeout is closed without an answer; a kept-alive connection that keeps sending
requests stays open past the timeout, since each request gets its own; a peer that sends
requests but never reads the answers is dropped after the timeout too; closing the server with
connections waiting leaves no timer behind. (The HTTP server in-process, on real sockets.)"""

from __future__ import annotations

import asyncio
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sidecar_harness import POD

from hotconf_sidecar._http import HttpServer
from hotconf_sidecar._sidecar import Sidecar
from hotconf_sidecar._store import Store
from hotconf_sidecar._verify import Verifier
from hotconf_wire.relay import Relay

IDLE = 1.0


async def _server(tmp_path: Path) -> tuple[Sidecar, HttpServer, int]:
    sidecar = Sidecar(
        pod=POD,
        verifier=Verifier(
            Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw),
            pod=POD,
        ),
        store=Store(tmp_path / "state"),
        relay=Relay(tmp_path / "hotconf.sock"),
        ack_timeout=1.0,
    )
    await sidecar.start()
    http = HttpServer(sidecar, host="127.0.0.1", port=0, idle_timeout=IDLE)
    [(_, port)] = await http.start()
    return sidecar, http, port


async def _closed_without_answer(reader: asyncio.StreamReader) -> bool:
    return await asyncio.wait_for(reader.read(), 10) == b""


async def test_idle_connections_are_closed(tmp_path: Path) -> None:
    sidecar, http, port = await _server(tmp_path)
    try:
        silent = await asyncio.open_connection("127.0.0.1", port)
        half_head = await asyncio.open_connection("127.0.0.1", port)
        half_head[1].write(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        half_body = await asyncio.open_connection("127.0.0.1", port)
        half_body[1].write(b"POST /v2/push HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\n{}")
        busy_reader, busy_writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(6):  # one and a half idle timeouts, a request every quarter of one
            busy_writer.write(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            head = await asyncio.wait_for(busy_reader.readuntil(b"\r\n\r\n"), 10)
            assert head.startswith(b"HTTP/1.1 200 ")
            assert await busy_reader.readexactly(3) == b"ok\n"
            await asyncio.sleep(IDLE / 4)
        for reader, writer in (silent, half_head, half_body):
            assert await _closed_without_answer(reader)
            writer.close()
        busy_writer.write(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        assert (await busy_reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200 ")
        assert await busy_reader.readexactly(3) == b"ok\n"
        assert await _closed_without_answer(busy_reader)  # now idle in its turn
        busy_writer.close()
        waiting = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.sleep(0)
    finally:
        await http.aclose()
        await sidecar.aclose(deadline=1.0)
    assert http._timer is None
    waiting[1].close()


async def test_a_peer_that_reads_no_answers_is_dropped(tmp_path: Path) -> None:
    sidecar, http, port = await _server(tmp_path)
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        transport = writer.transport
        assert isinstance(transport, asyncio.Transport)
        transport.pause_reading()  # the answers pile up in the server's buffers
        requests = b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n" * 1000
        for _ in range(200):
            writer.write(requests)
        # The client cannot see the close (it does not read); the server's own count can.
        async with asyncio.timeout(10 * IDLE):
            while http._connections:  # noqa: ASYNC110 (no event to wait on)
                await asyncio.sleep(IDLE / 4)
        transport.abort()
    finally:
        await http.aclose()
        await sidecar.aclose(deadline=1.0)
    assert http._timer is None
