"""The operator's HTTP/1.1 client for sidecars (``_http.HttpClient``), against real sockets.

Proves that it reads answers with Content-Length, chunked and close-delimited bodies, sends
the request line, headers and body a server expects, reuses a kept-alive connection, sends a
request again on a new connection when the server closed the idle one, and raises its own
errors (``ConnectionFailed``, ``BadResponse``, both ``OSError``) for what it cannot use.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from hotconf_operator._http import BadResponse, ConnectionFailed, HttpClient

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    headers = {}
    for line in head[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return head[0], headers, body


class Server:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
async def client() -> AsyncIterator[HttpClient]:
    http = HttpClient(keepalive=60)
    yield http
    await http.aclose()


async def test_content_length_answer_and_request_as_sent(client: HttpClient) -> None:
    seen: list[tuple[str, dict[str, str], bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            seen.append(await read_request(reader))
            writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{"ok":true}')

    async with Server(handler) as server:
        first = await client.request("POST", "127.0.0.1", server.port, "/v1/push", body=b"{}")
        second = await client.request("GET", "127.0.0.1", server.port, "/v1/state")
    assert (first.status, first.body) == (200, b'{"ok":true}')
    assert second.body == b'{"ok":true}'
    assert seen[0][0] == "POST /v1/push HTTP/1.1"
    assert seen[0][1]["host"] == f"127.0.0.1:{server.port}"
    assert seen[0][1]["content-type"] == "application/json"
    assert seen[0][2] == b"{}"
    assert seen[1][0] == "GET /v1/state HTTP/1.1"
    assert server.connections == 1  # kept alive and reused


async def test_chunked_answer(client: HttpClient) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(
                b"HTTP/1.1 409 Conflict\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n"
            )

    async with Server(handler) as server:
        for _ in range(2):
            answer = await client.request("GET", "127.0.0.1", server.port, "/")
            assert (answer.status, answer.body) == (409, b"hello world")
    assert server.connections == 1


async def test_close_delimited_answer_and_connection_close(client: HttpClient) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.0 200 OK\r\nConnection: close\r\n\r\nall of it")
        await writer.drain()

    async with Server(handler) as server:
        for _ in range(2):
            answer = await client.request("GET", "127.0.0.1", server.port, "/")
            assert answer.body == b"all of it"
    assert server.connections == 2  # not reused after the server closed it


async def test_idle_connection_closed_by_server_is_replaced(client: HttpClient) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        # ends the connection without saying so, as an idle timeout does

    async with Server(handler) as server:
        for _ in range(3):
            answer = await client.request("POST", "127.0.0.1", server.port, "/", body=b"x")
            assert answer.body == b"ok"
    assert server.connections == 3


async def test_connection_refused_is_connection_failed(client: HttpClient) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConnectionFailed, match="cannot connect"):
        await client.request("GET", "127.0.0.1", port, "/")


async def test_answer_cut_short_is_connection_failed(client: HttpClient) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
        await writer.drain()

    async with Server(handler) as server:
        with pytest.raises(ConnectionFailed, match="closed before"):
            await client.request("GET", "127.0.0.1", server.port, "/")


@pytest.mark.parametrize(
    "answer",
    [b"SSH-2.0-OpenSSH\r\n\r\n", b"HTTP/1.1 abc OK\r\n\r\n", b"HTTP/1.1 200 OK\r\nbad\r\n\r\n"],
)
async def test_not_http_is_bad_response(client: HttpClient, answer: bytes) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer)
        await writer.drain()
        await reader.read()

    async with Server(handler) as server:
        with pytest.raises(BadResponse):
            await client.request("GET", "127.0.0.1", server.port, "/")
    assert issubclass(BadResponse, OSError)
