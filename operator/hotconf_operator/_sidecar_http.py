"""HTTP/1.1 to the sidecars: kept-alive connections, one request at a time on each.

Used by :class:`hotconf_operator._pusher.Pusher` (retries, bounds and the wire's answers are
there); this module only carries one request and its answer. Each connection is an
:class:`asyncio.Protocol` whose answers ``httptools`` (llhttp, the parser the sidecar's server
uses) parses as they arrive; an answered connection goes back to its sidecar's idle list, is
reused by the next request to the same address (the most recent first), and is closed after
``idle_timeout`` seconds unused, when the sidecar closes it (it does after 30 s without a
request), or on any failure mid-request (a timeout included: a half-read answer is never reused).
At most ``max_idle`` connections are kept idle in all (a node's file descriptor limit may be
1024); beyond that an answered connection is closed.

Why not aiohttp's client, which kopf brings into the process anyway: for each request it builds
a ``ClientRequest`` and a ``ClientResponse``, merges headers, arms a timer and writes the body
from a task of its own in the next event-loop turn. In ``bench/operator_push.py`` that was more
than half of the operator's CPU per push (docs/performance.md, "The operator's push client");
here a request is one ``write`` of its head and body and one future.

Limits: an answer's body over ``max_body`` bytes, an answer that does not parse, or bytes before
any request is sent fail the request and close the connection (:class:`SidecarHttpError`);
nothing a sidecar sends can grow the operator's memory past that.
"""

from __future__ import annotations

import asyncio
import resource
from dataclasses import dataclass
from typing import Final

import httptools

__all__ = [
    "Answer",
    "SidecarHttp",
    "SidecarHttpError",
    "idle_connections_allowed",
    "raise_open_files_limit",
]

#: Bodies up to this size are written together with the head (one ``send``); larger ones after
#: it, so that a 1 MiB envelope is not copied once more.
_JOIN_BELOW: Final = 64 * 1024


def raise_open_files_limit() -> int:
    """Raise this process's soft limit of open files to its hard limit, as Go programs do at
    start (a container's soft limit may be 1024, its hard one far higher); return the soft
    limit now. Every sidecar answered recently keeps a connection open here."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass  # keep the soft limit
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def idle_connections_allowed() -> int:
    """How many connections the operator keeps idle: half its open files, after raising their
    limit (the rest is for the API, the webhook and the metrics), and at least 64. Below the
    number of pods a rollout reaches, the rest reconnect on every rollout."""
    return max(64, raise_open_files_limit() // 2)


class SidecarHttpError(ConnectionError):
    """The connection failed mid-request or the sidecar's answer broke HTTP/1.1 or our limits."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A sidecar's complete answer: its status code and body."""

    status: int
    body: bytes


class _Connection(asyncio.Protocol):
    """One TCP connection to a sidecar; carries one request at a time."""

    def __init__(self, *, max_body: int) -> None:
        self._max_body = max_body
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[Answer] | None = None
        self._body: list[bytes] = []
        self._size = 0
        self.closed = False
        self.idle_since = 0.0

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:
            self._fail(SidecarHttpError("the sidecar sent bytes before a request"))
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:  # on_body's error comes wrapped in one
            context = exc.__context__
            if isinstance(context, SidecarHttpError):
                self._fail(context)
            else:
                self._fail(SidecarHttpError(f"the sidecar's answer is not HTTP/1.1: {exc}"))

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            why = f": {exc}" if exc is not None else ""
            waiter.set_exception(SidecarHttpError(f"the sidecar closed the connection{why}"))

    # -- httptools callbacks

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self._max_body:
            raise SidecarHttpError(f"the sidecar's answer is over {self._max_body} bytes")
        self._body.append(body)

    def on_message_complete(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
            waiter.set_result(Answer(self._parser.get_status_code(), body))
        if not self._parser.should_keep_alive():
            self.close()

    # -- for SidecarHttp

    async def exchange(self, head: bytes, body: bytes) -> Answer:
        """Send one request and return its answer; raises SidecarHttpError."""
        transport = self._transport
        if transport is None or self.closed:
            raise SidecarHttpError("the connection is closed")
        waiter: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        self._body = []
        self._size = 0
        if len(body) < _JOIN_BELOW:
            transport.write(head + body)
        else:
            transport.write(head)
            transport.write(body)
        try:
            return await waiter
        finally:
            self._waiter = None
            self._body = []

    def _fail(self, exc: SidecarHttpError) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.close()

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()


class SidecarHttp:
    """Requests to sidecars over kept-alive connections; ``aclose()`` when done."""

    def __init__(
        self,
        *,
        idle_timeout: float = 60.0,
        max_idle: int = 512,
        max_body: int = 4 * 1024 * 1024,
    ) -> None:
        self._idle_timeout = idle_timeout
        self._max_idle = max_idle
        self._max_body = max_body
        self._idle: dict[tuple[str, int], list[_Connection]] = {}
        self._idle_count = 0  # connections in the idle lists, closed ones included
        self._open: set[_Connection] = set()
        self._sweep: asyncio.TimerHandle | None = None

    @property
    def connections(self) -> int:
        """Connections open now, idle or carrying a request."""
        return sum(1 for c in self._open if not c.closed)

    async def request(
        self,
        host: str,
        port: int,
        method: str,
        path: str,
        *,
        headers: tuple[tuple[str, str], ...] = (),
        body: bytes = b"",
        within: float,
    ) -> Answer:
        """One request and its whole answer, within ``within`` seconds (TimeoutError);
        raises OSError (SidecarHttpError included) when the connection fails."""
        key = (host, port)
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        lines = [f"{method} {path} HTTP/1.1", f"Host: {authority}"]
        lines += [f"{name}: {value}" for name, value in headers]
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        async with asyncio.timeout(within):
            connection = self._take(key) or await self._connect(key)
            try:
                answer = await connection.exchange(head, body)
            except BaseException:
                connection.close()
                self._open.discard(connection)
                raise
        if connection.closed:
            self._open.discard(connection)
        else:
            self._put(key, connection)
        return answer

    def _take(self, key: tuple[str, int]) -> _Connection | None:
        idle = self._idle.get(key)
        while idle:
            connection = idle.pop()
            self._idle_count -= 1
            if not connection.closed:
                return connection
            self._open.discard(connection)
        return None

    async def _connect(self, key: tuple[str, int]) -> _Connection:
        loop = asyncio.get_running_loop()
        max_body = self._max_body
        _, connection = await loop.create_connection(
            lambda: _Connection(max_body=max_body), key[0], key[1]
        )
        self._open.add(connection)
        return connection

    def _put(self, key: tuple[str, int], connection: _Connection) -> None:
        if self._idle_count >= self._max_idle:  # file descriptors are bounded: not kept
            connection.close()
            self._open.discard(connection)
            return
        self._idle_count += 1
        loop = asyncio.get_running_loop()
        connection.idle_since = loop.time()
        self._idle.setdefault(key, []).append(connection)
        if self._sweep is None:
            self._sweep = loop.call_later(self._idle_timeout, self._close_idle)

    def _close_idle(self) -> None:
        """Close connections idle for ``idle_timeout``; run again while any stay idle."""
        self._sweep = None
        loop = asyncio.get_running_loop()
        oldest = loop.time() - self._idle_timeout
        for key in list(self._idle):
            kept = []
            for connection in self._idle[key]:
                if connection.closed or connection.idle_since <= oldest:
                    connection.close()
                    self._open.discard(connection)
                else:
                    kept.append(connection)
            self._idle_count -= len(self._idle[key]) - len(kept)
            if kept:
                self._idle[key] = kept
            else:
                del self._idle[key]
        if self._idle:
            self._sweep = loop.call_later(self._idle_timeout, self._close_idle)

    async def aclose(self) -> None:
        """Close every connection, idle or not."""
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for connection in list(self._open):
            connection.close()
        self._open.clear()
        self._idle.clear()
        self._idle_count = 0
        await asyncio.sleep(0)  # let the transports run their connection_lost
