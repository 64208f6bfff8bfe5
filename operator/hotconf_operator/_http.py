"""A small HTTP/1.1 client for the sidecars' API, with kept-alive connections per sidecar.

Used by ``_pusher`` only. aiohttp's client was the largest share of the operator's CPU per push
(py-spy, 10 pods: ~25% of the operator's busy time in ``ClientSession._request`` and its
writers): tracing hooks, cookie jar, header multidicts, timers and connector bookkeeping for
every request. The sidecar API needs none of that: one request at a time per connection, a
small JSON body, a small JSON answer. This client writes the request in one ``transport.write``
and parses the answer's status line, headers and body (``Content-Length``, chunked, or up to
the end of the connection).

Exceptions (all subclasses of :class:`HttpError`, itself an ``OSError`` so callers that retry on
connection errors keep doing so): :class:`ConnectionFailed` (could not connect, or the
connection broke before a whole answer), :class:`BadResponse` (not HTTP/1.x as we read it).
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass

__all__ = ["BadResponse", "ConnectionFailed", "HttpClient", "HttpError", "Response"]

_MAX_HEAD = 64 * 1024  # status line and headers
_MAX_BODY = 16 * 1024 * 1024  # a sidecar's answer is a few hundred bytes


class HttpError(OSError):
    """The request did not get a whole HTTP answer."""


class ConnectionFailed(HttpError):
    """Could not connect, or the connection ended before the answer was complete."""


class BadResponse(HttpError):
    """The peer answered something this client cannot read as HTTP/1.x."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes


class _Connection(asyncio.Protocol):
    """One TCP connection; reads one answer at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False
        self._buffer = bytearray()
        self._waiter: asyncio.Future[None] | None = None
        self._eof = False

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self.closed = True  # the server will not read another request
        self._wake()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._eof = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- use

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    async def _more(self) -> None:
        """Wait for more bytes; raises ConnectionFailed at the end of the connection."""
        if self._eof:
            raise ConnectionFailed("the connection closed before the whole answer")
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    async def request(self, data: bytes) -> tuple[Response, bool]:
        """Send one request; the answer and whether the connection can be used again."""
        assert self.transport is not None
        self._buffer.clear()
        self.transport.write(data)
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            if len(self._buffer) > _MAX_HEAD:
                raise BadResponse("the answer's headers are too long")
            await self._more()
        head = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
        del self._buffer[: end + 4]
        status, headers = _parse_head(head)
        keep = headers.get("connection", "").lower() != "close"
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await self._read_chunked()
        elif "content-length" in headers:
            try:
                length = int(headers["content-length"])
            except ValueError:
                raise BadResponse("the answer's Content-Length is not a number") from None
            if not 0 <= length <= _MAX_BODY:
                raise BadResponse(f"the answer's Content-Length {length} is out of range")
            while len(self._buffer) < length:
                await self._more()
            body = bytes(self._buffer[:length])
            del self._buffer[:length]
        elif status in (204, 304) or 100 <= status < 200:
            body = b""
        else:  # the body ends with the connection
            while not self._eof:
                if len(self._buffer) > _MAX_BODY:
                    raise BadResponse("the answer is too long")
                await self._more_or_end()
            body, keep = bytes(self._buffer), False
        return Response(status, body), keep and not self._eof and not self._buffer

    async def _more_or_end(self) -> None:
        try:
            await self._more()
        except ConnectionFailed:
            pass

    async def _read_chunked(self) -> bytes:
        body = bytearray()
        while True:
            while (end := self._buffer.find(b"\r\n")) < 0:
                await self._more()
            size_text = bytes(self._buffer[:end]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise BadResponse("a chunk size is not hexadecimal") from None
            del self._buffer[: end + 2]
            if size == 0:
                while (end := self._buffer.find(b"\r\n")) != 0:  # trailers, then an empty line
                    if end > 0:
                        del self._buffer[: end + 2]
                    else:
                        await self._more()
                del self._buffer[:2]
                return bytes(body)
            if len(body) + size > _MAX_BODY:
                raise BadResponse("the answer is too long")
            while len(self._buffer) < size + 2:
                await self._more()
            body += self._buffer[:size]
            del self._buffer[: size + 2]


def _parse_head(lines: list[str]) -> tuple[int, dict[str, str]]:
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise BadResponse(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    try:
        status = int(parts[1])
    except ValueError:
        raise BadResponse(f"not an HTTP status code: {parts[1][:20]!r}") from None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise BadResponse(f"not a header line: {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    return status, headers


class HttpClient:
    """Requests to ``host:port`` over kept-alive connections; ``aclose()`` when done.

    ``keepalive`` is how long (seconds) an idle connection is kept; a connection the server
    closed meanwhile is noticed and replaced, and a request that finds its reused connection
    closed before any answer is sent again once on a new one.
    """

    def __init__(self, *, keepalive: float = 60.0, connect_timeout: float = 5.0) -> None:
        self._keepalive = keepalive
        self._connect_timeout = connect_timeout
        self._idle: dict[tuple[str, int], collections.deque[tuple[float, _Connection]]] = {}
        self._busy: set[_Connection] = set()
        self._closed = False

    async def request(
        self, method: str, host: str, port: int, path: str, *, body: bytes = b"",
        content_type: str = "application/json",
    ) -> Response:  # fmt: skip
        if self._closed:
            raise ConnectionFailed("the HTTP client is closed")
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        head = f"{method} {path} HTTP/1.1\r\nHost: {authority}\r\n"
        if body or method in ("POST", "PUT", "PATCH"):
            head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        data = head.encode("latin-1") + b"\r\n" + body
        conn = await self._take(host, port)
        try:
            try:
                response, keep = await conn.request(data)
            except ConnectionFailed:
                if not conn.reused or conn._buffer:
                    raise
                conn.close()  # the server closed it while idle: once more on a new one
                self._busy.discard(conn)
                conn = await self._connect(host, port)
                response, keep = await conn.request(data)
        except BaseException:
            conn.close()
            self._busy.discard(conn)
            raise
        self._busy.discard(conn)
        if keep and not self._closed:
            conn.reused = True
            loop_time = asyncio.get_running_loop().time()
            self._idle.setdefault((host, port), collections.deque()).append((loop_time, conn))
        else:
            conn.close()
        return response

    async def _take(self, host: str, port: int) -> _Connection:
        idle = self._idle.get((host, port))
        now = asyncio.get_running_loop().time()
        while idle:
            since, conn = idle.pop()
            if conn.closed or now - since > self._keepalive:
                conn.close()
                continue
            self._busy.add(conn)
            return conn
        return await self._connect(host, port)

    async def _connect(self, host: str, port: int) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, conn = await loop.create_connection(_Connection, host, port)
        except TimeoutError:
            raise ConnectionFailed(
                f"no connection to {host}:{port} within {self._connect_timeout} s"
            ) from None
        except OSError as exc:
            raise ConnectionFailed(f"cannot connect to {host}:{port}: {exc}") from exc
        self._busy.add(conn)
        return conn

    async def aclose(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for _, conn in idle:
                conn.close()
        self._idle.clear()
        for conn in list(self._busy):
            conn.close()
        self._busy.clear()
        await asyncio.sleep(0)  # let the transports finish closing
