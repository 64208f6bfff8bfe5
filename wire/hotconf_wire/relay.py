"""The relay: serves ConfigMap snapshots to the processes of a pod over a Unix socket.

One implementation of the server side of wire protocol v1, used by the sidecar (which feeds it
verified pushes from the operator), by ``hotconf dev`` (which feeds it a local file) and by
:mod:`hotconf.testing` (which lets application tests feed it directly). It keeps the newest
snapshot of every ConfigMap it was given, sends it to each client that subscribed to it — at once
to a client that connects later — and records each client's ACK or NACK per revision, so that
:meth:`Relay.publish` can answer which clients took a revision.

It never crashes on a client's bytes: a bad frame gets an ``error`` frame naming the rule that was
broken, then that connection alone is closed.

Each connection is an :class:`asyncio.Protocol` (``_Connection``): the bytes a read brings go
straight to a :class:`~hotconf_wire.protocol.FrameDecoder`, and each ACK is recorded in the
callback that read it. No stream reader, no task per connection: on asyncio streams every ACK
cost a task wake-up and futures (about 7 % of the sidecar's samples under py-spy;
``docs/performance.md``, "Sidecar", has the figures). Timers instead of awaits: one per
connection for its hello (``hello_timeout``), and one while a client leaves the frames sent on
connecting unread (``write_timeout``). A client that stops reading fills its own socket buffer
only: writes never wait, and :meth:`Publication.drained` drops a client that does not take its
frames within ``write_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import logging
import os
import socket
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, cast

from hotconf_wire.answers import ClientResult, ClientVerdict
from hotconf_wire.errors import ProtocolError, RelayError
from hotconf_wire.protocol import (
    PROTOCOL_VERSION,
    Ack,
    ConfigMapRef,
    ConfigSnapshot,
    ErrorReply,
    FrameDecoder,
    Heartbeat,
    Hello,
    Message,
    Nack,
    Welcome,
    encode,
    frame,
)

__all__ = ["LISTEN_BACKLOG", "ClientStatus", "Publication", "Relay"]

logger: Final = logging.getLogger("hotconf_wire.relay")

#: Connections the kernel completes and queues for a listener before the process accepts them:
#: the relay's Unix socket here, the sidecar's HTTP port (``hotconf_sidecar._http``). asyncio's
#: default, 100, made a burst of 120-200 connections opened at once wait: a TCP connection
#: beyond the queue has its SYN dropped and is retried 1 s later; a Unix one is refused
#: (EAGAIN). 1024 holds a node's worth of clients at once (a node runs at most 110 pods by the
#: kubelet's default, 250 where raised) with room to spare, and costs nothing until used. The
#: kernel caps it at ``net.core.somaxconn`` (4096 since Linux 5.4, 128 before: raise it there).
LISTEN_BACKLOG: Final = 1024

#: Seconds a closing connection gets to take the frames still buffered for it (the ``error``
#: frame of a refusal, the farewell of :meth:`Relay.aclose`) before it is cut off.
_CLOSE_GRACE: Final = 1.0


@dataclass(slots=True)
class ClientStatus:
    """What the relay knows of one connected client."""

    id: str
    client: str
    pid: int | None
    subscriptions: tuple[ConfigMapRef, ...]
    verdicts: dict[ConfigMapRef, ClientVerdict] = field(default_factory=dict)

    def wants(self, ref: ConfigMapRef) -> bool:
        return not self.subscriptions or ref in self.subscriptions


class _Connection(asyncio.Protocol):
    """One client connection: its transport, its status once it said hello, and the revisions
    awaiting its answer. The event loop calls the ``asyncio.Protocol`` methods; the relay
    calls :meth:`send` and reads :attr:`waiting`."""

    transport: asyncio.Transport
    status: ClientStatus  # set by its hello; ``welcomed`` says whether it was

    def __init__(self, relay: Relay) -> None:
        # Made by the listener as it accepts, before ``connection_made``: counted from here, so
        # that ``aclose`` waits for a connection accepted a moment before it closed the listener.
        relay._accepted.add(self)
        self.relay = relay
        assert relay._loop is not None  # set by ``start``
        self.loop = relay._loop  # for a future per snapshot sent, without a lookup (a syscall)
        self.waiting: dict[ConfigMapRef, tuple[str, asyncio.Future[ClientVerdict]]] = {}
        self.welcomed = False
        self.done = False  # serves no more: closed, dropped or refused (set once, by ``_finish``)
        self.paused = False  # the transport's buffer is over its high-water mark
        self._decoder = FrameDecoder()
        self._writable: asyncio.Future[None] | None = None  # while paused: resolved on resume
        self._timer: asyncio.TimerHandle | None = None  # the hello's, then the first frames'

    # -- asyncio.Protocol -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass ``asyncio.Transport``; they have its methods.
        self.transport = cast(asyncio.Transport, transport)
        if self.relay._server is None:  # accepted as the relay stopped
            self.done = True
            self.transport.close()
            return
        self._timer = self.loop.call_later(self.relay.hello_timeout, self._no_hello)

    def data_received(self, data: bytes) -> None:
        if self.done:
            return  # refused or dropped: what follows is not read
        try:
            self._decoder.deliver(data, self._receive)
        except ProtocolError as exc:
            self._refuse(exc)
        except Exception:
            logger.exception("relay connection failed on an unexpected error")
            self._finish()
            self.transport.abort()

    def eof_received(self) -> bool:
        if not self.done:
            try:
                self._decoder.eof()
            except ProtocolError as exc:
                self._refuse(exc)  # the client may still read its error frame
            else:
                self.close()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish()
        self._resumed()
        relay = self.relay
        relay._accepted.discard(self)
        if not relay._accepted and relay._all_closed is not None:
            if not relay._all_closed.done():
                relay._all_closed.set_result(None)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self._timer is not None and self.welcomed:  # the first frames were taken in time
            self._timer.cancel()
            self._timer = None
        self._resumed()

    # -- messages -------------------------------------------------------------------------------

    def _receive(self, message: Message) -> None:
        if not self.welcomed:
            self._hello(message)
            return
        match message:
            case Ack(namespace, name, revision):
                self.answer(ConfigMapRef(namespace, name), revision, "ack", "")
            case Nack(namespace, name, revision, error):
                self.answer(ConfigMapRef(namespace, name), revision, "nack", error)
            case Heartbeat():
                pass
            case ErrorReply(code, text):
                logger.warning("client %s reported %s: %s", self.status.id, code, text)
            case _:
                raise ProtocolError(
                    "unexpected_message", f"a client may not send {type(message).__name__}"
                )

    def _hello(self, hello: Message) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not isinstance(hello, Hello):
            raise ProtocolError(
                "unexpected_message", f"expected hello first, got {type(hello).__name__}"
            )
        if hello.version != PROTOCOL_VERSION:
            raise ProtocolError(
                "unsupported_version",
                f"client speaks version {hello.version}; this relay speaks {PROTOCOL_VERSION}",
            )
        relay = self.relay
        status = self.status = ClientStatus(
            id=f"c{next(relay._ids)}",
            client=hello.client,
            pid=hello.pid,
            subscriptions=hello.configmaps,
        )
        self.welcomed = True
        relay._connections[status.id] = self
        logger.info(
            "client %s connected: %s pid=%s wants %s",
            status.id,
            status.client or "?",
            status.pid,
            ", ".join(map(str, status.subscriptions)) or "every ConfigMap",
        )
        self.send(relay._welcome)
        for snapshot in list(relay._snapshots.values()):
            if status.wants(snapshot.ref):
                self.send(relay._frame(snapshot), snapshot)
        if self.paused:  # the client has ``write_timeout`` s to take them, as for a publication
            self._timer = self.loop.call_later(relay.write_timeout, self._stuck)

    # -- verdicts -------------------------------------------------------------------------------

    def verdict(self, revision: str, result: ClientResult, message: str = "") -> ClientVerdict:
        return ClientVerdict(
            self.status.id, self.status.client, self.status.pid, revision, result, message
        )

    def send(self, frame: bytes, snapshot: ConfigSnapshot | None = None) -> None:
        """Queue a frame; for a snapshot, start waiting for its verdict (superseding the last)."""
        if snapshot is not None:
            ref = snapshot.ref
            previous = self.waiting.pop(ref, None)
            if previous is not None and not previous[1].done():
                previous[1].set_result(self.verdict(previous[0], "superseded"))
            future: asyncio.Future[ClientVerdict] = self.loop.create_future()
            self.waiting[ref] = (snapshot.revision, future)
            self.status.verdicts[ref] = self.verdict(snapshot.revision, "pending")
        self.transport.write(frame)

    def answer(self, ref: ConfigMapRef, revision: str, result: ClientResult, message: str) -> None:
        verdict = self.verdict(revision, result, message)
        self.status.verdicts[ref] = verdict
        waiting = self.waiting.get(ref)
        if waiting is not None and waiting[0] == revision:
            del self.waiting[ref]
            if not waiting[1].done():
                waiting[1].set_result(verdict)

    def gone(self) -> None:
        for revision, future in self.waiting.values():
            if not future.done():
                future.set_result(self.verdict(revision, "gone"))
        self.waiting.clear()

    # -- flow control and closing ---------------------------------------------------------------

    def writable(self) -> asyncio.Future[None]:
        """A future resolved once the transport takes writes again (or the connection ends)."""
        waiter = self._writable
        if waiter is None:
            waiter = self.loop.create_future()
            if self.paused and not self.done:
                self._writable = waiter
            else:
                waiter.set_result(None)
        return waiter

    def _resumed(self) -> None:
        waiter, self._writable = self._writable, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _no_hello(self) -> None:
        self._timer = None
        logger.warning("closing a client that sent no hello in %.1fs", self.relay.hello_timeout)
        self.close()

    def _stuck(self) -> None:
        self._timer = None
        self.drop()

    def drop(self) -> None:
        """Close a client that leaves its frames unread for ``write_timeout`` seconds."""
        if self.done:
            return
        logger.warning(
            "client %s (%s) does not read its socket; dropping it",
            self.status.id,
            self.status.client,
        )
        self.close()

    def _refuse(self, exc: ProtocolError) -> None:
        """Answer a broken rule with an ``error`` frame naming it, then close this connection."""
        logger.warning("closing a client that broke the protocol: %s", exc)
        if not self.transport.is_closing():
            self.transport.write(encode(ErrorReply(exc.code, exc.message)))
        self.close()

    def close(self, farewell: bytes = b"") -> None:
        """Stop serving; close once the frames written are sent (cut off after _CLOSE_GRACE)."""
        self._finish()
        transport = self.transport
        if transport.is_closing():
            return
        if farewell:
            transport.write(farewell)
        transport.close()
        if transport.get_write_buffer_size():  # the client has not taken them yet
            self.loop.call_later(_CLOSE_GRACE, transport.abort)

    def _finish(self) -> None:
        """Once, when the connection stops serving: its pending verdicts become ``gone``."""
        if self.done:
            return
        self.done = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.welcomed:
            self.relay._connections.pop(self.status.id, None)
            self.gone()
            logger.info("client %s disconnected", self.status.id)


class Relay:
    """Serves snapshots on a Unix socket; see the module docstring.

    Use as ``async with Relay(path) as relay: await relay.publish(snapshot, wait=5)``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        server_name: str = "hotconf",
        socket_mode: int = 0o600,
        heartbeat_interval: float = 5.0,
        hello_timeout: float = 10.0,
        write_timeout: float = 10.0,
    ) -> None:
        self.path = Path(path)
        self.server_name = server_name
        self.socket_mode = socket_mode
        self.heartbeat_interval = heartbeat_interval
        self.hello_timeout = hello_timeout
        self.write_timeout = write_timeout
        self._snapshots: dict[ConfigMapRef, ConfigSnapshot] = {}
        self._frames: dict[ConfigMapRef, bytes] = {}  # each snapshot's frame, encoded once
        self._welcome = encode(Welcome(server=server_name))
        self._connections: dict[str, _Connection] = {}  # the welcomed ones, by client id
        self._accepted: set[_Connection] = set()  # every connection until it is lost
        self._all_closed: asyncio.Future[None] | None = None  # set by aclose, while it waits
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on the socket path, removing a stale socket file left by a dead relay."""
        if self._server is not None:
            raise RelayError(f"relay on {self.path} is already started")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_socket(self.path)
        loop = self._loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(
            lambda: _Connection(self), path=str(self.path), backlog=LISTEN_BACKLOG
        )
        os.chmod(self.path, self.socket_mode)
        self._heartbeat = asyncio.create_task(self._beat(), name="hotconf-relay-heartbeat")
        logger.info("relay listening on %s (mode %o)", self.path, self.socket_mode)

    async def aclose(self) -> None:
        """Stop listening, tell every client the relay is going away, and close them."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        # Let connections accepted a moment ago be made: each closes itself, seeing no server.
        await asyncio.sleep(0)
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        farewell = encode(ErrorReply("shutting_down", "the relay is stopping; reconnect later"))
        for connection in list(self._accepted):
            if hasattr(connection, "transport"):  # else ``connection_made`` closes it
                connection.close(farewell if connection.welcomed else b"")
        if self._accepted:
            assert self._loop is not None
            self._all_closed = self._loop.create_future()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_closed, _CLOSE_GRACE)
            self._all_closed = None
            for connection in list(self._accepted):  # a client that does not read its farewell
                if hasattr(connection, "transport"):
                    connection.transport.abort()
            await asyncio.sleep(0)
        await server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        logger.info("relay on %s stopped", self.path)

    async def __aenter__(self) -> Relay:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- state ----------------------------------------------------------------------------------

    def snapshot(self, ref: ConfigMapRef) -> ConfigSnapshot | None:
        """The newest snapshot of ``ref`` this relay holds."""
        return self._snapshots.get(ref)

    @property
    def snapshots(self) -> dict[ConfigMapRef, ConfigSnapshot]:
        return dict(self._snapshots)

    def clients(self) -> list[ClientStatus]:
        """Every connected client, in the order they connected."""
        return [c.status for c in self._connections.values()]

    # -- publishing -----------------------------------------------------------------------------

    def load(self, snapshots: Iterable[ConfigSnapshot | tuple[ConfigSnapshot, bytes]]) -> None:
        """Hold these snapshots without sending them (e.g. restored from disk before start).

        A ``(snapshot, body)`` pair gives the snapshot's frame body too, as :meth:`send` takes
        it: the sidecar restores the bytes the operator signed and relays those.
        """
        for item in snapshots:
            snapshot, body = item if isinstance(item, tuple) else (item, b"")
            self._snapshots[snapshot.ref] = snapshot
            if body:
                self._frames[snapshot.ref] = frame(body)
            else:
                self._frames.pop(snapshot.ref, None)

    async def publish(
        self, snapshot: ConfigSnapshot, *, wait: float | None = None
    ) -> list[ClientVerdict]:
        """Make ``snapshot`` current and send it to every client subscribed to its ConfigMap.

        With ``wait`` (seconds), return each client's verdict, or ``timeout`` for those that
        did not answer in time; without it, return at once with every result ``pending``.
        """
        publication = self.send(snapshot)
        await publication.drained()
        if wait is None:
            return publication.pending()
        return await publication.verdicts(wait)

    def send(self, snapshot: ConfigSnapshot, *, body: bytes | None = None) -> Publication:
        """Make ``snapshot`` current and write it to every subscribed client, without waiting.

        The first half of :meth:`publish`, for a caller with other work to do while the clients
        take the snapshot (the sidecar runs its adapters meanwhile); the frame is encoded once
        for every client. ``body`` is the snapshot's frame body when the caller has it already
        (the sidecar relays a verified push's bytes as they were signed). Await the returned
        :class:`Publication` for the verdicts.
        """
        ref = snapshot.ref
        self._snapshots[ref] = snapshot
        self._frames[ref] = data = encode(snapshot) if body is None else frame(body)
        targets = [c for c in self._connections.values() if c.status.wants(ref)]
        for connection in targets:
            connection.send(data, snapshot)
        return Publication(self, snapshot, targets)

    def _frame(self, snapshot: ConfigSnapshot) -> bytes:
        data = self._frames.get(snapshot.ref)
        if data is None:
            data = self._frames[snapshot.ref] = encode(snapshot)
        return data

    async def _drain(self, connections: list[_Connection]) -> None:
        """Wait until each of ``connections`` takes writes again; drop those that do not within
        ``write_timeout`` (each alone: a client that does not read holds up no other)."""
        await asyncio.wait([c.writable() for c in connections], timeout=self.write_timeout)
        for connection in connections:
            if connection.paused:
                connection.drop()

    # -- heartbeats -----------------------------------------------------------------------------

    async def _beat(self) -> None:
        frame = encode(Heartbeat())
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            for connection in list(self._connections.values()):
                if not connection.transport.is_closing():
                    connection.transport.write(frame)


class Publication:
    """One snapshot written to its clients by :meth:`Relay.send`: wait here for their verdicts."""

    def __init__(self, relay: Relay, snapshot: ConfigSnapshot, targets: list[_Connection]) -> None:
        self._relay = relay
        self.snapshot = snapshot
        self._targets = targets

    async def drained(self) -> None:
        """Wait until every client's socket took the frame (a client that does not read within
        the relay's ``write_timeout`` is dropped)."""
        slow = [c for c in self._targets if c.paused and not c.done]
        if slow:
            await self._relay._drain(slow)

    def pending(self) -> list[ClientVerdict]:
        revision = self.snapshot.revision
        return [c.verdict(revision, "pending") for c in self._targets]

    async def verdicts(self, wait: float) -> list[ClientVerdict]:
        """Each client's verdict, or ``timeout`` for those that did not answer in ``wait`` s."""
        await self.drained()
        ref, revision = self.snapshot.ref, self.snapshot.revision
        futures = [
            w[1] for c in self._targets if (w := c.waiting.get(ref)) is not None and not w[1].done()
        ]
        if len(futures) == 1:
            # One client (the usual pod): await its future under a timer, no asyncio.wait set-up.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await asyncio.shield(futures[0])
        elif futures:
            await asyncio.wait(futures, timeout=wait)
        verdicts = []
        for connection in self._targets:
            waiting = connection.waiting.get(ref)
            answered = connection.status.verdicts.get(ref)
            if waiting is not None and waiting[0] == revision:
                verdicts.append(connection.verdict(revision, "timeout"))
            elif answered is not None and answered.revision == revision:
                verdicts.append(answered)
            else:
                verdicts.append(connection.verdict(revision, "superseded"))
        return verdicts


def _remove_stale_socket(path: Path) -> None:
    """Unlink ``path`` only if it is a socket nobody listens on; refuse anything else."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise RelayError(f"{path} exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise RelayError(f"cannot probe socket {path}: {exc}") from exc
        logger.info("removing stale socket %s", path)
        path.unlink(missing_ok=True)
        return
    finally:
        probe.close()
    raise RelayError(f"another relay is already listening on {path}")
