"""The sidecar's HTTP API: push, state, health, readiness and metrics.

Built and started by :mod:`hotconf_sidecar.__main__` around a
:class:`~hotconf_sidecar._sidecar.Sidecar`.

=================  ======================================================================
``POST /v1/push``  a signed envelope; 200 ``applied``/``unchanged`` with per-client verdicts,
                   4xx ``{"error": {"reason", "message"}}``, 503 while starting or stopping
``GET /v1/state``  held revision and sequence per ConfigMap and each client's verdict
``GET /healthz``   200 while the process serves HTTP
``GET /readyz``    200 once the state is loaded and the relay listens, else 503
``GET /metrics``   Prometheus text format
=================  ======================================================================

HTTP/1.1 is parsed by ``h11`` (a small, strict, pure-Python state machine) on asyncio streams.
aiohttp would do the same job but costs about 15 MB of resident memory in every pod, a third
of the sidecar's budget, for five routes. Limits, so that no input can hurt the process:
request heads over 16 KiB are refused (431), the push body size limit is checked on
``Content-Length`` before a byte of the body is read and again while reading a chunked body
(413, then the connection is closed instead of draining the rest), other routes take no body
over 64 KiB, and a connection that sends no complete request head (or body) for 30 s is
closed. A handler's unexpected error is logged and answered 500; the server keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final

import h11

from hotconf.envelope import MAX_BODY_BYTES, EnvelopeError
from hotconf_sidecar._metrics import CONTENT_TYPE
from hotconf_sidecar._sidecar import Sidecar, Unavailable
from hotconf_sidecar._store import StoreError

__all__ = ["HttpServer"]

logger: Final = logging.getLogger("hotconf_sidecar.http")

_MAX_HEAD: Final = 16 * 1024
_MAX_OTHER_BODY: Final = 64 * 1024
_READ_CHUNK: Final = 256 * 1024


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    body: bytes
    content_type: bytes = b"application/json"
    close: bool = False


class _TooLarge(Exception):
    pass


def _json(status: int, body: dict[str, Any], *, close: bool = False) -> _Reply:
    return _Reply(status, json.dumps(body, separators=(",", ":")).encode(), close=close)


def _error(status: int, reason: str, message: str, *, close: bool = False) -> _Reply:
    return _json(status, {"error": {"reason": reason, "message": message}}, close=close)


def _phrase(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


def _text(status: int, text: str) -> _Reply:
    return _Reply(status, text.encode(), b"text/plain; charset=utf-8")


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
        sock.listen(100)
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
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        # When each connection waiting for a request head or body must have sent it; one timer
        # for them all (see ``_expect``).
        self._deadlines: dict[asyncio.StreamReader, float] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._routes: dict[tuple[bytes, bytes], Callable[[bytes], Awaitable[_Reply]]] = {
            (b"POST", b"/v1/push"): self._push,
            (b"GET", b"/v1/state"): self._state,
            (b"GET", b"/healthz"): self._healthz,
            (b"GET", b"/readyz"): self._readyz,
            (b"GET", b"/metrics"): self._metrics,
        }

    async def start(self) -> list[tuple[str, int]]:
        """Listen; return the bound addresses (useful with port 0)."""
        # Looked up once: on Python 3.11 every ``get_running_loop()`` is a ``getpid`` syscall.
        self._loop = asyncio.get_running_loop()
        uvloop = type(self._loop).__module__.startswith("uvloop")
        sock = _numeric_listener(self.host, self.port) if uvloop else None
        if sock is not None:
            self._server = await asyncio.start_server(self._serve, sock=sock, limit=_READ_CHUNK)
        else:
            self._server = await asyncio.start_server(
                self._serve, self.host, self.port, limit=_READ_CHUNK, reuse_address=True
            )
        return [s.getsockname()[:2] for s in self._server.sockets]

    async def aclose(self) -> None:
        """Stop listening and close every connection (their requests have been answered)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        # Closing a writer ends its connection's read; cancel only what does not end by itself
        # (on Python 3.11 asyncio logs a spurious error for each cancelled stream handler).
        for writer in list(self._connections.values()):
            writer.close()
        if self._connections:
            await asyncio.wait(list(self._connections), timeout=1.0)
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        await server.wait_closed()

    # -- connections ----------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEAD)
        try:
            while True:
                self._expect(reader)
                try:
                    event = await self._next_event(conn, reader)
                except TimeoutError:
                    return
                if isinstance(event, h11.ConnectionClosed):
                    return
                assert isinstance(event, h11.Request)
                reply = await self._handle(conn, reader, writer, event)
                self._send(conn, writer, reply)
                if writer.transport.get_write_buffer_size():
                    await writer.drain()
                if reply.close or conn.our_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except h11.RemoteProtocolError as exc:
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                status = exc.error_status_hint
                with contextlib.suppress(Exception):
                    self._send(
                        conn, writer, _error(status, "malformed", f"bad HTTP: {exc}", close=True)
                    )
                    await asyncio.wait_for(writer.drain(), 1.0)
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("HTTP connection failed on an unexpected error")
        finally:
            self._deadlines.pop(reader, None)
            writer.close()
            self._connections.pop(task, None)

    def _expect(self, reader: asyncio.StreamReader) -> None:
        """Give the connection ``idle_timeout`` s from now to send a whole request head (or body).

        Not a timer per request: ``asyncio.timeout()`` schedules and cancels a timer handle for
        every head and body. Deadlines only grow, so the one timer, set for the earliest, stays
        valid; when it fires, a reader past its deadline gets ``TimeoutError`` from its read.
        """
        loop = self._loop
        assert loop is not None
        deadline = loop.time() + self.idle_timeout
        self._deadlines[reader] = deadline
        if self._timer is None and self._server is not None:  # none once closing
            self._timer = loop.call_at(deadline, self._expire)

    def _expire(self) -> None:
        self._timer = None
        loop = self._loop
        assert loop is not None
        now = loop.time() + 0.001  # a timer may fire up to the clock's resolution early
        for reader, deadline in list(self._deadlines.items()):
            if deadline <= now:
                del self._deadlines[reader]
                reader.set_exception(TimeoutError())
        if self._deadlines:
            self._timer = loop.call_at(min(self._deadlines.values()), self._expire)

    async def _next_event(self, conn: h11.Connection, reader: asyncio.StreamReader) -> h11.Event:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await reader.read(_READ_CHUNK))
                continue
            if event is h11.PAUSED:
                return h11.ConnectionClosed()  # the peer sent more than one request at once
            assert isinstance(event, h11.Event)
            return event

    async def _read_body(
        self, conn: h11.Connection, reader: asyncio.StreamReader, limit: int
    ) -> bytes:
        chunks: list[bytes] = []
        size = 0
        self._expect(reader)
        while True:
            event = await self._next_event(conn, reader)
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size > limit:
                    raise _TooLarge
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                self._deadlines.pop(reader, None)  # answering takes as long as it takes
                return b"".join(chunks)
            else:
                raise h11.RemoteProtocolError("connection closed inside a request body")

    def _send(self, conn: h11.Connection, writer: asyncio.StreamWriter, reply: _Reply) -> None:
        headers = [
            (b"content-type", reply.content_type),
            (b"content-length", str(len(reply.body)).encode()),
        ]
        if reply.close:
            headers.append((b"connection", b"close"))
        events = (
            h11.Response(status_code=reply.status, headers=headers, reason=_phrase(reply.status)),
            h11.Data(data=reply.body),
        )
        writer.write(
            b"".join([*(conn.send(e) or b"" for e in events), conn.send(h11.EndOfMessage()) or b""])
        )

    async def _handle(
        self,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        request: h11.Request,
    ) -> _Reply:
        path = request.target.partition(b"?")[0]
        handler = self._routes.get((request.method, path))
        limit = MAX_BODY_BYTES if handler == self._push else _MAX_OTHER_BODY
        length = next((v for k, v in request.headers if k == b"content-length"), None)
        if length is not None and int(length) > limit:  # h11 validated it as digits
            return self._too_large(handler, length.decode())
        if conn.they_are_waiting_for_100_continue:
            writer.write(conn.send(h11.InformationalResponse(status_code=100, headers=[])) or b"")
        try:
            body = await self._read_body(conn, reader, limit)
        except _TooLarge:
            return self._too_large(handler, "more than that")
        if handler is None:
            if any(p == path for _, p in self._routes):
                allowed = ", ".join(m.decode() for m, p in self._routes if p == path)
                return _error(405, "method_not_allowed", f"{path.decode()} takes {allowed}")
            return _error(404, "not_found", f"no endpoint {path.decode(errors='replace')}")
        try:
            return await handler(body)
        except Exception:
            self.sidecar.metrics.rejected.labels("internal").inc()
            logger.exception("%s %s failed", request.method.decode(), path.decode())
            return _error(500, "internal", "the sidecar failed on this request; see its log")

    def _too_large(self, handler: object, size: str) -> _Reply:
        if handler != self._push:
            return _error(413, "too_large", "this endpoint takes no body", close=True)
        error = EnvelopeError("too_large", f"push body of {size} bytes exceeds {MAX_BODY_BYTES}")
        self.sidecar.metrics.rejected.labels(error.reason).inc()
        logger.warning("push rejected: %s", error)
        return _json(error.status, error.to_json(), close=True)

    # -- routes ---------------------------------------------------------------------------------

    async def _push(self, body: bytes) -> _Reply:
        try:
            answer = await self.sidecar.push(body)
        except EnvelopeError as exc:
            return _json(exc.status, exc.to_json())
        except Unavailable as exc:
            self.sidecar.metrics.rejected.labels("unavailable").inc()
            return _error(503, "unavailable", str(exc))
        except StoreError as exc:
            self.sidecar.metrics.rejected.labels("internal").inc()
            logger.error("push failed: %s", exc)
            return _error(500, "internal", str(exc))
        return _json(200, answer)

    async def _state(self, body: bytes) -> _Reply:
        return _json(200, self.sidecar.state())

    async def _healthz(self, body: bytes) -> _Reply:
        return _text(200, "ok\n")

    async def _readyz(self, body: bytes) -> _Reply:
        if self.sidecar.ready:
            return _text(200, "ready\n")
        return _text(503, f"{self.sidecar.phase.value}\n")

    async def _metrics(self, body: bytes) -> _Reply:
        return _Reply(200, self.sidecar.metrics.render(), CONTENT_TYPE.encode())
