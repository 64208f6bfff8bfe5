"""The sidecar's HTTP API: push, state, health, readiness and metrics.

Built and started by :mod:`hotconf_sidecar.__main__` around a
:class:`~hotconf_sidecar._sidecar.Sidecar`.

=================  ======================================================================
``POST /v2/push``  a signed envelope; 200 ``applied``/``unchanged`` with per-client verdicts,
                   4xx ``{"error": {"reason", "message"}}``, 503 while starting or stopping
``GET /v2/state``  held revision and sequence per ConfigMap and each client's verdict
``GET /v1/state``  the same (v1's layout was v2's)
``POST /v1/push``  410 ``gone``: envelope v1 is no longer accepted (``docs/protocol.md``)
``GET /healthz``   200 while the process serves HTTP
``GET /readyz``    200 once the state is loaded and the relay listens, else 503
``GET /metrics``   Prometheus text format
=================  ======================================================================

HTTP/1.1 is parsed by ``httptools`` (MagicStack's binding of llhttp, Node.js's parser in C; the
one uvicorn uses) in an :class:`asyncio.Protocol`, one per connection: no stream reader, no task
per connection, one task per push (it awaits the clients' ACKs) and none for the other routes.
Why not the others (``docs/performance.md``, "Sidecar", has the figures): a pure-Python parser
such as ``h11`` on asyncio streams costs tens of microseconds per request and a future per
read, the largest piece of the sidecar's CPU per push; aiohttp costs about 15 MB of resident
memory in every pod, a third of the sidecar's budget, for a handful of routes; httptools costs
well under 1 MiB.

Limits, so that no input can hurt the process: request heads over 16 KiB are refused (431), the
push body size limit is checked on ``Content-Length`` before a byte of the body is read and again
while reading a chunked body (413, then the connection is closed instead of draining the rest),
other routes take no body over 64 KiB, and a connection that sends no complete request head (or
body) for 30 s is closed. A handler's unexpected error is logged and answered 500; the server
keeps serving. Requests on one connection are answered one at a time, in order (pipelined ones
wait their turn); a connection stops reading while a request is handled and more bytes arrive
(at most one more read is parsed and held), and while the peer does not read its answers. An
HTTP/1.1 request needs one ``Host`` header; ``Expect: 100-continue`` is answered; after an
HTTP/1.0 request, ``Connection: close``, or a request that asks to switch protocols (``Upgrade``,
``CONNECT``), the connection is closed once it is answered; ``HEAD`` gets the head of the answer
a ``GET`` would get (405 or 404: no route takes ``HEAD``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Final, NamedTuple, cast

import httptools

from hotconf_sidecar._errors import StoreError, Unavailable
from hotconf_sidecar._metrics import CONTENT_TYPE
from hotconf_sidecar._sidecar import Sidecar
from hotconf_wire.answers import Refusal
from hotconf_wire.envelope import MAX_BODY_BYTES, PUSH_PATH, SIGNATURE_HEADER, STATE_PATH
from hotconf_wire.errors import EnvelopeError
from hotconf_wire.relay import LISTEN_BACKLOG

__all__ = ["HttpServer"]

logger: Final = logging.getLogger("hotconf_sidecar.http")

_MAX_HEAD: Final = 16 * 1024
_MAX_OTHER_BODY: Final = 64 * 1024
_PUSH: Final = (b"POST", PUSH_PATH.encode())
_V1_PUSH: Final = (b"POST", b"/v1/push")
_SIGNATURE: Final = SIGNATURE_HEADER.lower().encode()
_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
# Seconds a closing connection gets to take the answers still buffered for it.
_CLOSE_GRACE: Final = 1.0

_Route = tuple[bytes, bytes]


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    body: bytes
    content_type: bytes = b"application/json"
    close: bool = False


class _Request(NamedTuple):
    route: _Route  # (method, path without the query)
    body: bytes
    keep_alive: bool
    signature: str | None = None  # the push's Hotconf-Signature header


class _Stop(Exception):
    """Raised in a parser callback to stop parsing: the connection takes no more requests."""


def _error(status: int, reason: str, message: str, *, close: bool = False) -> _Reply:
    return _Reply(status, Refusal(reason, message).encode(), close=close)


def _refused(error: EnvelopeError, *, close: bool = False) -> _Reply:
    return _Reply(error.status, Refusal.of(error).encode(), close=close)


def _malformed(message: str, status: int = 400) -> _Reply:
    return _error(status, "malformed", f"bad HTTP: {message}", close=True)


def _text(status: int, text: str) -> _Reply:
    return _Reply(status, text.encode(), b"text/plain; charset=utf-8")


@functools.cache
def _status_line(status: int) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase.encode()
    except ValueError:
        phrase = b""
    return b"HTTP/1.1 %d %s\r\n" % (status, phrase)


def _encode(reply: _Reply, *, close: bool, head_only: bool) -> bytes:
    """The answer's bytes: status line, two or three headers, the body."""
    return b"%scontent-type: %s\r\ncontent-length: %d\r\n%s\r\n%s" % (
        _status_line(reply.status),
        reply.content_type,
        len(reply.body),
        b"connection: close\r\n" if close else b"",
        b"" if head_only else reply.body,
    )


def _numeric_listener(host: str, port: int) -> socket.socket | None:
    """A listening socket for a numeric ``host`` (the usual ``0.0.0.0``), else ``None``.

    For uvloop only: given a host, uvloop resolves it on libuv's thread pool, which starts four
    threads that stay for the life of the process; a numeric address needs no resolving. (Not
    for asyncio's loop, which resolves a numeric host inline: measured, a sidecar that bound its
    own socket there made an ``mmap``, ``mremap`` and ``munmap`` for each 256 KiB socket read and
    one that let asyncio bind did not: glibc's dynamic mmap threshold, which some larger block
    freed during that start-up raises, stayed at its 128 KiB default.)
    """
    try:
        [(family, kind, proto, _, address), *_] = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE | socket.AI_NUMERICHOST
        )
    except socket.gaierror:
        return None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from exc
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class HttpServer:
    """Serves the sidecar's routes on one TCP address; see the module docstring."""

    def __init__(
        self,
        sidecar: Sidecar,
        *,
        host: str,
        port: int,
        idle_timeout: float = 30.0,
    ) -> None:
        self.sidecar = sidecar
        self.host = host
        self.port = port
        self.idle_timeout = idle_timeout
        self._server: asyncio.Server | None = None
        self._closing = False
        self._connections: set[_Connection] = set()
        self._all_closed: asyncio.Future[None] | None = None  # set by aclose, while it waits
        self._tasks: set[asyncio.Task[None]] = set()  # the pushes being handled
        # When each connection waiting for a request head or body must have sent it; one timer
        # for them all (see ``_expect``).
        self._deadlines: dict[_Connection, float] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Every route but the push: they answer without waiting. The push is ``_push``.
        self._routes: dict[_Route, Callable[[bytes], _Reply]] = {
            (b"GET", STATE_PATH.encode()): self._state,
            (b"GET", b"/v1/state"): self._state,
            (b"GET", b"/healthz"): self._healthz,
            (b"GET", b"/readyz"): self._readyz,
            (b"GET", b"/metrics"): self._metrics,
        }
        self._allowed: dict[bytes, str] = {}
        for method, path in [*self._routes, _PUSH, _V1_PUSH]:
            known = self._allowed.get(path)
            self._allowed[path] = f"{known}, {method.decode()}" if known else method.decode()

    async def start(self) -> list[tuple[str, int]]:
        """Listen; return the bound addresses (useful with port 0)."""
        # Looked up once: on Python 3.11 every ``get_running_loop()`` is a ``getpid`` syscall.
        loop = self._loop = asyncio.get_running_loop()
        uvloop = type(loop).__module__.startswith("uvloop")
        sock = _numeric_listener(self.host, self.port) if uvloop else None
        factory = functools.partial(_Connection, self)
        if sock is not None:
            # The backlog again: create_server listens anew, with its own default (100).
            self._server = await loop.create_server(factory, sock=sock, backlog=LISTEN_BACKLOG)
        else:
            self._server = await loop.create_server(
                factory, self.host, self.port, reuse_address=True, backlog=LISTEN_BACKLOG
            )
        return [s.getsockname()[:2] for s in self._server.sockets]

    async def aclose(self) -> None:
        """Stop listening and close every connection (their requests have been answered)."""
        server, self._server = self._server, None
        if server is None:
            return
        self._closing = True
        server.close()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for conn in list(self._connections):
            conn.close()
        # A push still being handled finishes (its answer has nowhere to go), or is cancelled.
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=1.0)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._connections:
            assert self._loop is not None
            self._all_closed = self._loop.create_future()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_closed, _CLOSE_GRACE)
            for conn in list(self._connections):  # a peer that does not read its answers
                conn.abort()
            await asyncio.sleep(0)
        await server.wait_closed()

    # -- connections ----------------------------------------------------------------------------

    def _expect(self, conn: _Connection) -> None:
        """Give ``conn`` ``idle_timeout`` s from now to send a whole request head (or body).

        Not a timer per request: ``loop.call_at()`` schedules a timer handle for every head and
        body, and cancelling it costs as much. Deadlines only grow, so the one timer, set for the
        earliest, stays valid; when it fires, a connection past its deadline is closed.
        """
        loop = self._loop
        assert loop is not None
        deadline = loop.time() + self.idle_timeout
        self._deadlines[conn] = deadline
        if self._timer is None and not self._closing:
            self._timer = loop.call_at(deadline, self._expire)

    def _expire(self) -> None:
        self._timer = None
        loop = self._loop
        assert loop is not None
        now = loop.time() + 0.001  # a timer may fire up to the clock's resolution early
        for conn, deadline in list(self._deadlines.items()):
            if deadline <= now:
                del self._deadlines[conn]
                conn.close()
        if self._deadlines:
            self._timer = loop.call_at(min(self._deadlines.values()), self._expire)

    def _lost(self, conn: _Connection) -> None:
        self._connections.discard(conn)
        self._deadlines.pop(conn, None)
        if not self._connections and self._all_closed is not None:
            if not self._all_closed.done():
                self._all_closed.set_result(None)

    def _answer(self, route: _Route, body: bytes) -> _Reply:
        """The answer to a request for any route but the push (none of them waits)."""
        handler = self._routes.get(route)
        if handler is None:
            path = route[1]
            allowed = self._allowed.get(path)
            if allowed is not None:
                return _error(405, "method_not_allowed", f"{path.decode()} takes {allowed}")
            return _error(404, "not_found", f"no endpoint {path.decode(errors='replace')}")
        try:
            return handler(body)
        except Exception:
            return self._failed(route)

    def _failed(self, route: _Route) -> _Reply:
        self.sidecar.metrics.rejected.labels("internal").inc()
        method, path = route
        logger.exception("%s %s failed", method.decode(), path.decode())
        return _error(500, "internal", "the sidecar failed on this request; see its log")

    def _too_large(self, route: _Route, size: str) -> _Reply:
        if route != _PUSH:
            return _error(413, "too_large", "this endpoint takes no body", close=True)
        error = EnvelopeError("too_large", f"push body of {size} bytes exceeds {MAX_BODY_BYTES}")
        return self._rejected(error, close=True)

    def _rejected(self, error: EnvelopeError, *, close: bool = False) -> _Reply:
        """A push refused before the sidecar saw it: counted and logged as the sidecar does."""
        self.sidecar.metrics.rejected.labels(error.reason).inc()
        logger.warning("push rejected: %s", error)
        return _refused(error, close=close)

    def _gone(self) -> _Reply:
        return self._rejected(
            EnvelopeError(
                "gone",
                f"POST /v1/push (envelope v1) is no longer served; this sidecar takes envelope "
                f"v2 on POST {PUSH_PATH}: upgrade the hotconf operator to this sidecar's version",
            ),
            close=True,
        )

    # -- routes ---------------------------------------------------------------------------------

    async def _push(self, request: _Request) -> _Reply:
        try:
            answer = await self.sidecar.push(request.body, signature=request.signature)
        except EnvelopeError as exc:
            return _refused(exc)
        except Unavailable as exc:
            self.sidecar.metrics.rejected.labels("unavailable").inc()
            return _error(503, "unavailable", str(exc))
        except StoreError as exc:
            self.sidecar.metrics.rejected.labels("internal").inc()
            logger.error("push failed: %s", exc)
            return _error(500, "internal", str(exc))
        except Exception:
            return self._failed(_PUSH)
        return _Reply(200, answer.encode())

    def _state(self, body: bytes) -> _Reply:
        return _Reply(200, self.sidecar.state().encode())

    def _healthz(self, body: bytes) -> _Reply:
        return _text(200, "ok\n")

    def _readyz(self, body: bytes) -> _Reply:
        if self.sidecar.ready:
            return _text(200, "ready\n")
        return _text(503, f"{self.sidecar.lifecycle.value}\n")

    def _metrics(self, body: bytes) -> _Reply:
        return _Reply(200, self.sidecar.metrics.render(), CONTENT_TYPE.encode())


class _Connection(asyncio.Protocol):
    """One client connection: bytes go to httptools, whose callbacks (the ``on_*`` methods)
    gather each request; requests are answered in order, from ``_pump``."""

    _transport: asyncio.Transport

    def __init__(self, server: HttpServer) -> None:
        assert server._loop is not None  # made by ``start``
        self._server = server
        self._loop = server._loop
        self._parser = httptools.HttpRequestParser(self)
        # The request being parsed.
        self._url = b""
        self._length: bytes | None = None
        self._hosts = 0
        self._continue = False
        self._signature: bytes | None = None
        self._route: _Route = (b"", b"")
        self._limit = _MAX_OTHER_BODY
        self._body: list[bytes] = []
        self._size = 0
        self._keep_alive = True
        self._in_message = False  # from its first byte to its end
        self._in_head = True  # before its head is complete (or before it starts)
        self._head = 0  # bytes of its head handed to the callbacks (target and headers)
        # Bytes read while a head was incomplete: bounds what httptools holds of one header.
        self._unparsed = 0
        # The connection.
        self._queue: deque[_Request | _Reply] = deque()  # requests, a refusal, to answer in turn
        self._task: asyncio.Task[None] | None = None  # the push being handled
        self._done = False  # takes no more requests: refused, asked to close, or the peer's EOF
        self._reading = True
        self._writable = True

    # -- asyncio.Protocol -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass ``asyncio.Transport``; they have its methods.
        self._transport = transport = cast(asyncio.Transport, transport)
        server = self._server
        if server._closing:
            self._done = True
            transport.close()
            return
        server._connections.add(self)
        server._expect(self)

    def data_received(self, data: bytes) -> None:
        if self._done:
            return  # answering what came before, then closing: the rest is not read
        busy = self._task is not None
        if self._in_head:
            self._unparsed += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            self._callback_failed(exc.__context__)
        except httptools.HttpParserUpgrade:
            # Answered (or queued) like any request; what follows is not HTTP: close after it.
            self._done = True
            self._pump()
        except httptools.HttpParserError as exc:
            self._refuse(_malformed(str(exc)))
        except Exception:
            logger.exception("HTTP connection failed on an unexpected error")
            self.abort()
            return
        else:
            if self._in_head and self._unparsed > _MAX_HEAD:
                self._refuse(_malformed("request head over 16 KiB", 431))
        # Back-pressure: stop reading when requests wait their turn, or when bytes came while a
        # push was being handled (not at once: a push alone would pay two syscalls for it).
        if self._reading and (self._queue or (busy and self._task is not None)):
            self._reading = False
            self._transport.pause_reading()

    def eof_received(self) -> bool:
        if self._in_message:
            self._refuse(_malformed("the connection closed inside a request"))
        self._done = True
        self._pump()  # closes now, or once what was asked is answered
        return not self._transport.is_closing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._done = True
        self._queue.clear()
        self._server._lost(self)

    def pause_writing(self) -> None:
        self._writable = False
        if self._reading:
            self._reading = False
            self._transport.pause_reading()
        self._server._expect(self)  # a peer that takes no answers for that long is dropped

    def resume_writing(self) -> None:
        self._writable = True
        self._server._deadlines.pop(self, None)
        self._pump()

    # -- httptools callbacks --------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_message = True
        self._url = b""
        self._length = None
        self._hosts = 0
        self._continue = False
        self._signature = None
        self._head = 0
        self._body = []
        self._size = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head += len(name) + len(value) + 4
        name = name.lower()
        if name == b"content-length":
            self._length = value
        elif name == b"host":
            self._hosts += 1
        elif name == b"expect":
            self._continue = value.lower() == b"100-continue"
        elif name == _SIGNATURE:
            self._signature = value

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._head > _MAX_HEAD:
            self._refuse(_malformed("request head over 16 KiB", 431))
            raise _Stop
        parser = self._parser
        version = parser.get_http_version()
        if self._hosts > 1 or (self._hosts == 0 and version == "1.1"):
            self._refuse(_malformed("an HTTP/1.1 request needs one Host header"))
            raise _Stop
        route = self._route = (parser.get_method(), self._url.partition(b"?")[0])
        if route == _V1_PUSH:
            self._refuse(self._server._gone())
            raise _Stop
        limit = self._limit = MAX_BODY_BYTES if route == _PUSH else _MAX_OTHER_BODY
        if self._length is not None:
            try:
                length = int(self._length)  # llhttp has checked that it is all digits
            except ValueError:
                self._refuse(_malformed("bad Content-Length"))
                raise _Stop from None
            if length > limit:
                self._refuse(self._server._too_large(route, self._length.decode()))
                raise _Stop
        # No keep-alive for HTTP/1.0 even when asked (RFC 9112 leaves it optional), and no
        # switching protocols.
        self._keep_alive = (
            version == "1.1" and parser.should_keep_alive() and not parser.should_upgrade()
        )
        if self._task is None and not self._queue:  # else it waits its turn
            if self._continue and version == "1.1":
                self._transport.write(_CONTINUE)
            self._server._expect(self)  # the body's turn

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self._limit:
            self._refuse(self._server._too_large(self._route, "more than that"))
            raise _Stop
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._in_message = False
        self._in_head = True
        self._unparsed = 0
        body = self._body
        if self._task is None and self._writable and not self._queue:
            # Answered now, and that takes as long as it takes. (Not while the peer leaves its
            # answers unread: that connection's deadline stands.)
            self._server._deadlines.pop(self, None)
        signature = self._signature
        self._queue.append(
            _Request(
                self._route,
                body[0] if len(body) == 1 else b"".join(body),
                self._keep_alive,
                None if signature is None else signature.decode("latin-1"),
            )
        )
        if not self._keep_alive:
            self._done = True
        self._pump()
        if self._done:
            raise _Stop

    # -- answering ------------------------------------------------------------------------------

    def _pump(self) -> None:
        """Answer what waits in line until a push must be awaited; then read on, or close."""
        queue = self._queue
        while queue and self._task is None and self._writable:
            item = queue.popleft()
            if isinstance(item, _Reply):
                self._send(item, None)  # a refusal: closes
            elif item.route == _PUSH:
                task = self._task = self._loop.create_task(self._run(item))
                self._server._tasks.add(task)
            else:
                self._send(self._server._answer(item.route, item.body), item)
        if self._task is not None or queue or not self._writable or self._transport.is_closing():
            return
        if self._done:
            self.close()  # nothing more will come, and all is answered
            return
        if not self._reading:
            self._reading = True
            self._transport.resume_reading()
        self._server._expect(self)  # the next head's turn

    async def _run(self, request: _Request) -> None:
        """Handle a push (the one route that waits: for the clients' ACKs), then answer on."""
        try:
            reply = await self._server._push(request)
        finally:
            task, self._task = self._task, None
            if task is not None:
                self._server._tasks.discard(task)
        try:
            self._send(reply, request)
            self._pump()
        except Exception:
            logger.exception("HTTP connection failed on an unexpected error")
            self.abort()

    def _send(self, reply: _Reply, request: _Request | None) -> None:
        close = reply.close or request is None or not request.keep_alive
        transport = self._transport
        if not transport.is_closing():
            head_only = request is not None and request.route[0] == b"HEAD"
            transport.write(_encode(reply, close=close, head_only=head_only))
        if close:
            self.close()

    def _refuse(self, reply: _Reply) -> None:
        """Answer ``reply`` after what was asked before, then close; read nothing more."""
        if self._done:
            return
        self._done = True
        self._queue.append(reply)
        self._pump()

    def _callback_failed(self, error: BaseException | None) -> None:
        if isinstance(error, _Stop):
            return  # a refusal, queued by the callback that raised it
        if isinstance(error, httptools.HttpParserError):  # from httptools' own callback code
            self._refuse(_malformed(str(error)))
            return
        logger.error("HTTP request failed on an unexpected error", exc_info=error)
        self._refuse(_error(500, "internal", "the sidecar failed on this request; see its log"))

    def close(self) -> None:
        """Close once the answers already written are sent (cut off after ``_CLOSE_GRACE``)."""
        self._done = True
        self._queue.clear()
        transport = self._transport
        if transport.is_closing():
            return
        transport.close()
        if transport.get_write_buffer_size():  # the peer has not taken its answers yet
            self._loop.call_later(_CLOSE_GRACE, transport.abort)

    def abort(self) -> None:
        self._done = True
        self._queue.clear()
        self._transport.abort()
