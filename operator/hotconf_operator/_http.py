"""A small HTTP/1.1 client for the sidecars' API, with kept-alive connections per sidecar.

Used by ``_pusher`` only. aiohttp's client was the largest share of the operator's CPU per push
(py-spy, 10 pods: ~25% of the operator's busy time in ``ClientSession._request`` and its
writers): tracing hooks, cookie jar, header multidicts, timers and connector bookkeeping for
every request. The sidecar API needs none of that: one request at a time per connection, a
small JSON body, a small JSON answer. This client keeps connections per sidecar, writes each
request in one ``transport.write``, and leaves HTTP/1.1 itself (framing, ``Content-Length``,
chunked or close-delimited answers, keep-alive rules) to ``h11``, the protocol library the
sidecar's server uses too.

Exceptions (all subclasses of :class:`HttpError`, itself an ``OSError`` so callers that retry on
connection errors keep doing so): :class:`ConnectionFailed` (could not connect, or the
connection broke before a whole answer), :class:`BadResponse` (not HTTP/1.x as we read it).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from dataclasses import dataclass
from typing import Any

import h11

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
    """One TCP connection with its h11 state machine; one request and answer at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False
        self.answered_nothing = True
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_HEAD)
        self._waiter: asyncio.Future[None] | None = None

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.answered_nothing = False
        self._h11.receive_data(data)
        self._wake()

    def eof_received(self) -> bool:
        self.closed = True  # the server will not read another request
        self._h11.receive_data(b"")
        self._wake()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(h11.RemoteProtocolError):
                self._h11.receive_data(b"")
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

    async def _next_event(self) -> Any:
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                if self.closed:  # e.g. the body was cut short by the end of the connection
                    raise ConnectionFailed(
                        f"the connection closed before the whole answer: {exc}"
                    ) from exc
                raise BadResponse(f"the answer is not valid HTTP/1.1: {exc}") from exc
            if event is not h11.NEED_DATA:
                return event
            if self.closed and self.transport is not None and self.transport.is_closing():
                raise ConnectionFailed("the connection closed before the whole answer")
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None

    async def request(self, request: h11.Request, body: bytes) -> tuple[Response, bool]:
        """Send one request; the answer and whether the connection can be used again."""
        assert self.transport is not None
        self.answered_nothing = True
        try:
            data = self._h11.send(request) or b""
            if body:
                data += self._h11.send(h11.Data(data=body)) or b""
            data += self._h11.send(h11.EndOfMessage()) or b""
        except h11.LocalProtocolError as exc:  # the server closed this connection meanwhile
            raise ConnectionFailed(f"the connection cannot take a request: {exc}") from exc
        self.transport.write(data)
        status = 0
        chunks: list[bytes] = []
        size = 0
        while True:
            event = await self._next_event()
            if isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > _MAX_BODY:
                    raise BadResponse("the answer is too long")
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionFailed("the connection closed before the whole answer")
            # InformationalResponse (1xx): keep reading
        keep = (
            not self.closed
            and self._h11.our_state is h11.DONE
            and self._h11.their_state is h11.DONE
        )
        if keep:
            self._h11.start_next_cycle()
        return Response(status, b"".join(chunks)), keep


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
        headers = [("Host", authority)]
        if body or method in ("POST", "PUT", "PATCH"):
            headers += [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        request = h11.Request(method=method, target=path, headers=headers)
        conn = await self._take(host, port)
        try:
            try:
                response, keep = await conn.request(request, body)
            except ConnectionFailed:
                if not conn.reused or not conn.answered_nothing:
                    raise
                conn.close()  # the server closed it while idle: once more on a new one
                self._busy.discard(conn)
                conn = await self._connect(host, port)
                response, keep = await conn.request(request, body)
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
