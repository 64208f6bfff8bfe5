"""The operator's HTTP client to the sidecars (``_sidecar_http.SidecarHttp``) and the pusher on it.

Against real servers on loopback (asyncio servers scripted per test) it
proves: a request reuses the kept-alive connection of the one before; a connection the server
closed (idle, or ``Connection: close``) is not reused; chunked and split answers are read whole;
an answer over the size limit, an answer that is not HTTP, and bytes sent before any request
fail the request and close that connection; a timeout closes the connection (a half-read answer
is never read as the next one's); idle connections are closed after the idle timeout and beyond
``max_idle``; the Host header carries the address (an IPv6 one in brackets); a refused address
is the ``OSError`` the pusher retries; the open files limit is raised to the hard limit. (The
pusher on it, against real sidecars: tests/e2e.)
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from hotconf_operator._sidecar_http import SidecarHttp, SidecarHttpError

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class Server:
    """A loopback HTTP server answering each complete request with ``answer(request)``."""

    def __init__(self, answer: Callable[[bytes], bytes | None]) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.port = 0
        self.close_after = False  # close each connection once it is answered

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                reply = self.answer(request)
                if reply is None:
                    continue  # never answer
                writer.write(reply)
                await writer.drain()
                if self.close_after or b"Connection: close" in reply:
                    writer.close()
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Server]:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            for writer in self.writers:
                writer.close()
            server.close()
            await server.wait_closed()


async def test_requests_reuse_the_kept_alive_connection() -> None:
    http = SidecarHttp()
    async with Server(lambda r: OK).running() as server:
        for _ in range(3):
            answer = await http.request("127.0.0.1", server.port, "GET", "/v2/state", within=5)
            assert (answer.status, answer.body) == (200, b"ok")
        assert server.connections == 1
        assert http.connections == 1
        body = b'{"a": 1}'
        await http.request(
            "127.0.0.1", server.port, "POST", "/v2/push", body=body, within=5,
            headers=(("Hotconf-Signature", "sig"),),
        )  # fmt: skip
        request = server.requests[-1]
        assert request.startswith(b"POST /v2/push HTTP/1.1\r\n")
        assert f"Host: 127.0.0.1:{server.port}\r\n".encode() in request
        assert b"Hotconf-Signature: sig\r\n" in request and request.endswith(b"\r\n\r\n" + body)
        await http.aclose()
        assert http.connections == 0


async def test_a_connection_the_server_closes_is_not_reused() -> None:
    http = SidecarHttp()
    close = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    async with Server(lambda r: close).running() as server:
        for _ in range(2):
            answer = await http.request("127.0.0.1", server.port, "GET", "/", within=5)
            assert answer.body == b"ok"
        assert server.connections == 2
    async with Server(lambda r: OK).running() as server:
        await http.request("127.0.0.1", server.port, "GET", "/", within=5)
        for writer in server.writers:  # the server drops its idle connection (a restart)
            writer.close()
        await asyncio.sleep(0.05)
        assert http.connections == 0
        await http.request("127.0.0.1", server.port, "GET", "/", within=5)
        assert server.connections == 2
    await http.aclose()


async def test_chunked_and_split_answers_are_read_whole() -> None:
    chunked = (
        b"HTTP/1.1 409 Conflict\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )

    async def split(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        for part in (OK[:5], OK[5:20], OK[20:]):
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.close()
        await writer.wait_closed()

    http = SidecarHttp()
    async with Server(lambda r: chunked).running() as server:
        answer = await http.request("127.0.0.1", server.port, "GET", "/", within=5)
        assert (answer.status, answer.body) == (409, b"abcde")
    server2 = await asyncio.start_server(split, "127.0.0.1", 0)
    port = server2.sockets[0].getsockname()[1]
    answer = await http.request("127.0.0.1", port, "GET", "/", within=5)
    assert (answer.status, answer.body) == (200, b"ok")
    await http.aclose()
    server2.close()
    await server2.wait_closed()


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 100, "over 64 bytes"),
        (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "not HTTP/1.1"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "closed the connection"),
    ],
    ids=["too-large", "not-http", "cut-short"],
)
async def test_a_bad_answer_fails_the_request_and_its_connection(
    reply: bytes, message: str
) -> None:
    http = SidecarHttp(max_body=64)
    async with Server(lambda r: reply).running() as server:
        server.close_after = True  # the cut-short answer ends with the connection
        with pytest.raises(SidecarHttpError, match=message):
            await http.request("127.0.0.1", server.port, "GET", "/", within=5)
        assert http.connections == 0
        server.answer, server.close_after = (lambda r: OK), False
        answer = await http.request("127.0.0.1", server.port, "GET", "/", within=5)
        assert answer.body == b"ok" and server.connections == 2
    await http.aclose()


async def test_bytes_before_a_request_close_an_idle_connection() -> None:
    http = SidecarHttp()
    async with Server(lambda r: OK).running() as server:
        await http.request("127.0.0.1", server.port, "GET", "/", within=5)
        server.writers[0].write(OK)  # an answer nobody asked for
        await asyncio.sleep(0.05)
        assert http.connections == 0
        await http.request("127.0.0.1", server.port, "GET", "/", within=5)
        assert server.connections == 2
    await http.aclose()


async def test_a_timeout_closes_the_connection() -> None:
    http = SidecarHttp()
    answers = iter([None, OK])
    async with Server(lambda r: next(answers)).running() as server:
        with pytest.raises(TimeoutError):
            await http.request("127.0.0.1", server.port, "GET", "/", within=0.2)
        assert http.connections == 0
        answer = await http.request("127.0.0.1", server.port, "GET", "/", within=5)
        assert answer.body == b"ok" and server.connections == 2
    await http.aclose()


async def test_idle_connections_are_closed_after_the_idle_timeout_and_beyond_the_cap() -> None:
    http = SidecarHttp(idle_timeout=0.2, max_idle=1)
    async with Server(lambda r: OK).running() as one, Server(lambda r: OK).running() as two:
        await http.request("127.0.0.1", one.port, "GET", "/", within=5)
        await http.request("127.0.0.1", two.port, "GET", "/", within=5)
        assert http.connections == 1  # the second was answered, then closed: one idle at most
        await asyncio.sleep(0.5)
        assert http.connections == 0
        await http.request("127.0.0.1", one.port, "GET", "/", within=5)
        assert one.connections == 2
    await http.aclose()


async def test_a_refused_address_is_an_os_error() -> None:
    http = SidecarHttp()
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(ConnectionRefusedError):
        await http.request("127.0.0.1", port, "GET", "/", within=5)
    await http.aclose()


async def test_an_ipv6_host_is_bracketed() -> None:
    http = SidecarHttp()
    seen: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(OK)
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(serve, "::1", 0)
    port = server.sockets[0].getsockname()[1]
    await http.request("::1", port, "GET", "/", within=5)
    assert f"Host: [::1]:{port}\r\n".encode() in seen[0]
    await http.aclose()
    server.close()
    await server.wait_closed()


def test_the_open_files_limit_is_raised_to_the_hard_limit() -> None:
    # In a child process: the limit is process-wide.
    script = (
        "import resource\n"
        "from hotconf_operator._sidecar_http import raise_open_files_limit\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))\n"
        "now = raise_open_files_limit()\n"
        "assert now == hard == resource.getrlimit(resource.RLIMIT_NOFILE)[0], (now, hard)\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
