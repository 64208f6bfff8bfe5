"""The relay: serves ConfigMap snapshots to the processes of a pod over a Unix socket.

One implementation of the server side of wire protocol v1, used by the sidecar (which feeds it
verified pushes from the operator), by ``hotconf dev`` (which feeds it a local file) and by
:mod:`hotconf.testing` (which lets application tests feed it directly). It keeps the newest
snapshot of every ConfigMap it was given, sends it to each client that subscribed to it — at once
to a client that connects later — and records each client's ACK or NACK per revision, so that
:meth:`Relay.publish` can answer which clients took a revision.

It never crashes on a client's bytes: a bad frame gets an ``error`` frame naming the rule that was
broken, then that connection alone is closed.
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
from typing import Final

from hotconf_wire.answers import ClientResult, ClientVerdict
from hotconf_wire.errors import ProtocolError, RelayError
from hotconf_wire.protocol import (
    PROTOCOL_VERSION,
    Ack,
    ConfigMapRef,
    ConfigSnapshot,
    ErrorReply,
    Heartbeat,
    Hello,
    Message,
    Nack,
    Welcome,
    encode,
    frame,
    read_message,
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


class _Connection:
    """One client connection: its writer, its status and the revisions awaiting its answer."""

    def __init__(
        self,
        status: ClientStatus,
        writer: asyncio.StreamWriter,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.status = status
        self.writer = writer
        self.loop = loop  # for a future per snapshot sent, without a lookup (a syscall on 3.11)
        self.waiting: dict[ConfigMapRef, tuple[str, asyncio.Future[ClientVerdict]]] = {}

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
        self.writer.write(frame)

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
        self._connections: dict[str, _Connection] = {}
        self._handlers: set[asyncio.Task[None]] = set()
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
        self._server = await asyncio.start_unix_server(
            self._serve, path=str(self.path), limit=1 << 20, backlog=LISTEN_BACKLOG
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
        # Let connections accepted a moment ago start their handler, so that each one is
        # closed by its own ``finally`` below instead of leaking its transport.
        await asyncio.sleep(0)
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        farewell = encode(ErrorReply("shutting_down", "the relay is stopping; reconnect later"))
        for connection in list(self._connections.values()):
            with contextlib.suppress(OSError, RuntimeError):
                connection.writer.write(farewell)
            connection.writer.close()
        # Closing a writer ends its handler's read with a clean end of stream. Cancel only the
        # handlers that do not finish by themselves: on Python 3.11, asyncio's stream callback
        # logs a spurious "Exception in callback" for every handler task that ends cancelled.
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=1.0)
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)
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

    async def _drain(self, connection: _Connection) -> None:
        if not connection.writer.transport.get_write_buffer_size():
            return  # the kernel took the whole frame: nothing to wait for (the usual case)
        try:
            await asyncio.wait_for(connection.writer.drain(), self.write_timeout)
        except (TimeoutError, OSError, RuntimeError):
            logger.warning(
                "client %s (%s) does not read its socket; dropping it",
                connection.status.id,
                connection.status.client,
            )
            connection.writer.close()

    # -- serving --------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        connection: _Connection | None = None
        try:
            hello = await asyncio.wait_for(read_message(reader), self.hello_timeout)
            if hello is None:
                return
            if not isinstance(hello, Hello):
                raise ProtocolError(
                    "unexpected_message", f"expected hello first, got {type(hello).__name__}"
                )
            if hello.version != PROTOCOL_VERSION:
                raise ProtocolError(
                    "unsupported_version",
                    f"client speaks version {hello.version}; this relay speaks {PROTOCOL_VERSION}",
                )
            status = ClientStatus(
                id=f"c{next(self._ids)}",
                client=hello.client,
                pid=hello.pid,
                subscriptions=hello.configmaps,
            )
            connection = _Connection(status, writer, asyncio.get_running_loop())
            self._connections[status.id] = connection
            logger.info(
                "client %s connected: %s pid=%s wants %s",
                status.id,
                status.client or "?",
                status.pid,
                ", ".join(map(str, status.subscriptions)) or "every ConfigMap",
            )
            connection.send(encode(Welcome(server=self.server_name)))
            for snapshot in list(self._snapshots.values()):
                if status.wants(snapshot.ref):
                    connection.send(self._frame(snapshot), snapshot)
            await self._drain(connection)
            while True:
                message = await read_message(reader)
                if message is None:
                    return
                self._receive(connection, message)
        except ProtocolError as exc:
            logger.warning("closing a client that broke the protocol: %s", exc)
            with contextlib.suppress(OSError, RuntimeError):
                writer.write(encode(ErrorReply(exc.code, exc.message)))
                await asyncio.wait_for(writer.drain(), 1.0)
        except TimeoutError:
            logger.warning("closing a client that sent no hello in %.1fs", self.hello_timeout)
        except (ConnectionError, OSError):
            pass
        finally:
            if connection is not None:
                self._connections.pop(connection.status.id, None)
                connection.gone()
                logger.info("client %s disconnected", connection.status.id)
            writer.close()
            self._handlers.discard(task)

    def _receive(self, connection: _Connection, message: Message) -> None:
        match message:
            case Ack(namespace, name, revision):
                connection.answer(ConfigMapRef(namespace, name), revision, "ack", "")
            case Nack(namespace, name, revision, error):
                connection.answer(ConfigMapRef(namespace, name), revision, "nack", error)
            case Heartbeat():
                pass
            case ErrorReply(code, text):
                logger.warning("client %s reported %s: %s", connection.status.id, code, text)
            case _:
                raise ProtocolError(
                    "unexpected_message", f"a client may not send {type(message).__name__}"
                )

    async def _beat(self) -> None:
        frame = encode(Heartbeat())
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            for connection in list(self._connections.values()):
                with contextlib.suppress(OSError, RuntimeError):
                    connection.writer.write(frame)


class Publication:
    """One snapshot written to its clients by :meth:`Relay.send`: wait here for their verdicts."""

    def __init__(self, relay: Relay, snapshot: ConfigSnapshot, targets: list[_Connection]) -> None:
        self._relay = relay
        self.snapshot = snapshot
        self._targets = targets

    async def drained(self) -> None:
        """Wait until every client's socket took the frame (a client that does not read within
        the relay's ``write_timeout`` is dropped)."""
        slow = [c for c in self._targets if c.writer.transport.get_write_buffer_size()]
        if slow:
            await asyncio.gather(*(self._relay._drain(c) for c in slow))

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
