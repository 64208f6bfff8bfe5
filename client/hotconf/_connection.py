"""The client side of wire protocol v1: one background thread that keeps a relay connection up.

Called by every runner (thread, process and asyncio modes share this one implementation). The
thread connects to the relay's Unix socket, sends ``hello`` (the ConfigMaps wanted, the client's
name and pid), reads ``welcome``, then hands every ``config`` snapshot to ``on_snapshot`` together
with the moment it arrived (``time.monotonic()``). The runner answers through :meth:`send`
(ACK/NACK). Heartbeats go out every ``heartbeat_interval``; a connection that hears nothing for
``idle_timeout`` is presumed dead.

When the relay is gone (not there yet, restarted, sent garbage) the thread logs why, waits with
exponential backoff and jitter, and reconnects; the runner keeps its task running meanwhile. The
relay resends its current snapshot on every new connection, so a reconnect resynchronises by
itself: the runner re-ACKs a revision it already runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

from hotconf._errors import ProtocolError
from hotconf_wire.protocol import (
    PROTOCOL_VERSION,
    ConfigMapRef,
    ConfigSnapshot,
    ErrorReply,
    FrameDecoder,
    Heartbeat,
    Hello,
    Message,
    Welcome,
    encode,
)

__all__ = ["Connection"]

logger: Final = logging.getLogger("hotconf.connection")

#: First reconnect delay: short, because at pod start the sidecar is usually a moment away.
BACKOFF_INITIAL: Final = 0.05
#: Longest reconnect delay: a relay that comes back is found within about this long.
BACKOFF_MAX: Final = 2.0
#: Heartbeat period; the relay sends its own on the same order (5 s by default).
HEARTBEAT_INTERVAL: Final = 5.0
#: Silence after which a connection is presumed dead (six missed relay heartbeats).
IDLE_TIMEOUT: Final = 30.0
#: Bytes read from the relay at once (a 1 MiB config arrives in a few reads).
_RECV_BUFFER: Final = 256 * 1024


class Connection:
    """Keeps one relay connection alive in a daemon thread; see the module docstring."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        configmaps: Sequence[ConfigMapRef] = (),
        client: str = "",
        on_snapshot: Callable[[ConfigSnapshot, float], None],
        on_status: Callable[[bool, str], None] | None = None,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
        idle_timeout: float = IDLE_TIMEOUT,
        backoff_initial: float = BACKOFF_INITIAL,
        backoff_max: float = BACKOFF_MAX,
    ) -> None:
        self.path = Path(path)
        self.configmaps = tuple(configmaps)
        self.client = client
        self._on_snapshot = on_snapshot
        self._on_status = on_status
        self._heartbeat_interval = heartbeat_interval
        self._idle_timeout = idle_timeout
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        #: Why the last attempt failed, for error messages (e.g. FirstConfigTimeout).
        self.last_problem = "no connection attempt yet"
        self.connected = False

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("a Connection starts once")
        self._thread = threading.Thread(target=self._main, name="hotconf-connection", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop reconnecting, close the socket and join the thread."""
        self._closing.set()
        with self._lock:
            sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    # -- sending --------------------------------------------------------------------------------

    def send(self, message: Message) -> bool:
        """Send ``message`` now if connected; return whether it went out.

        A message that cannot go out is not queued: after a reconnect the relay resends its
        current snapshot and the runner answers it again.
        """
        frame = encode(message)
        with self._lock:
            sock = self._sock
            if sock is None:
                return False
            try:
                sock.sendall(frame)
            except OSError as exc:
                logger.debug("cannot send %s to the relay: %s", type(message).__name__, exc)
                return False
        return True

    # -- the thread -----------------------------------------------------------------------------

    def _status(self, connected: bool, problem: str) -> None:
        self.connected = connected
        if problem:
            self.last_problem = problem
        if self._on_status is not None:
            try:
                self._on_status(connected, problem)
            except Exception:
                logger.exception("hotconf: status callback failed")

    def _main(self) -> None:
        delay = self._backoff_initial
        while not self._closing.is_set():
            served = self._attempt()
            if self._closing.is_set():
                break
            if served:
                delay = self._backoff_initial
            # Full jitter on the upper half: clients of one relay do not reconnect in lockstep.
            pause = delay * (0.5 + random.random() / 2)
            self._closing.wait(pause)
            delay = min(delay * 2, self._backoff_max)

    def _attempt(self) -> bool:
        """One connection from connect to close; True if it got as far as a welcome."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        welcomed = False
        try:
            sock.settimeout(5.0)
            try:
                sock.connect(str(self.path))
            except OSError as exc:
                self._status(False, f"cannot connect to {self.path}: {exc.strerror or exc}")
                return False
            with self._lock:
                if self._closing.is_set():
                    return False
                self._sock = sock
            hello = Hello(
                configmaps=self.configmaps,
                client=self.client,
                pid=os.getpid(),
                version=PROTOCOL_VERSION,
            )
            sock.sendall(encode(hello))
            welcomed = self._serve(sock)
        except ProtocolError as exc:
            logger.warning(
                "hotconf: relay on %s broke the protocol (%s); reconnecting", self.path, exc
            )
            self._status(False, f"relay on {self.path} broke the protocol: {exc}")
            with contextlib.suppress(OSError, ProtocolError):
                sock.sendall(encode(ErrorReply(exc.code, exc.message)))
        except OSError as exc:
            if not self._closing.is_set():
                logger.warning("hotconf: connection to %s failed: %s; reconnecting", self.path, exc)
                self._status(False, f"connection to {self.path} failed: {exc}")
        finally:
            with self._lock:
                self._sock = None
            sock.close()
            if self.connected:
                self._status(False, "")
        return welcomed

    def _serve(self, sock: socket.socket) -> bool:
        decoder = FrameDecoder()
        welcomed = False
        tick = min(self._heartbeat_interval, self._idle_timeout)
        sock.settimeout(tick)
        last_heard = last_sent = time.monotonic()
        # One buffer per connection: ``recv(n)`` would allocate (mmap) and shrink an n-byte
        # object for every frame, three system calls more per config.
        buffer = memoryview(bytearray(_RECV_BUFFER))
        while not self._closing.is_set():
            try:
                size = sock.recv_into(buffer)
                chunk: memoryview | None = buffer[:size]
            except TimeoutError:
                chunk = None
            now = time.monotonic()
            if chunk is not None and not chunk:
                if not self._closing.is_set():
                    logger.info(
                        "hotconf: relay on %s closed the connection; reconnecting", self.path
                    )
                    self._status(False, f"relay on {self.path} closed the connection")
                return welcomed
            if chunk:
                last_heard = now
                for message in decoder.feed(chunk):
                    welcomed = self._receive(message, welcomed, now)
            elif now - last_heard > self._idle_timeout:
                logger.warning(
                    "hotconf: relay on %s silent for %.0fs; reconnecting",
                    self.path,
                    now - last_heard,
                )
                self._status(False, f"relay on {self.path} went silent")
                return welcomed
            if now - last_sent >= self._heartbeat_interval and welcomed:
                if self.send(Heartbeat()):
                    last_sent = now
        return welcomed

    def _receive(self, message: Message, welcomed: bool, now: float) -> bool:
        match message:
            case Welcome(server=server, version=version):
                if version != PROTOCOL_VERSION:
                    raise ProtocolError(
                        "unsupported_version",
                        f"relay speaks version {version}; this client speaks {PROTOCOL_VERSION}",
                    )
                logger.info("hotconf: connected to relay %s on %s", server or "?", self.path)
                self._status(True, "")
                return True
            case ConfigSnapshot() if welcomed:
                self._on_snapshot(message, now)
            case Heartbeat():
                pass
            case ErrorReply(code=code, message=text):
                # The relay closes after an error; the reconnect loop takes it from here.
                level = logging.INFO if code == "shutting_down" else logging.WARNING
                logger.log(level, "hotconf: relay on %s said %s: %s", self.path, code, text)
                self._status(False, f"relay on {self.path} said {code}: {text}")
            case _:
                raise ProtocolError(
                    "unexpected_message",
                    f"a relay may not send {type(message).__name__}"
                    + ("" if welcomed else " before welcome"),
                )
        return welcomed
