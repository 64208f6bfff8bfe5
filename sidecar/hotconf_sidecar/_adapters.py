"""Adapters for applications that do not speak the wire protocol: files, a URL, a signal.

Called by :mod:`hotconf_sidecar._sidecar` after a revision is persisted, next to the relay.
Each configured adapter reports like a client of the relay (``adapter:files``,
``adapter:notify-url``, ``adapter:signal``) with ``ack`` or ``nack`` and a message, so the
operator sees whether it worked.

Files: ``<files_dir>/<name>/`` is laid out like a kubelet ConfigMap volume. The keys of one
revision are written into a fresh hidden directory ``..<revision-prefix>.<n>``; the symlink
``..data`` is then swapped to it with one ``rename`` (atomic), and each key is a symlink
``<key> -> ..data/<key>``. A reader that opens ``..data/...`` or a key sees either the whole old
set or the whole new set, never half. Old directories are removed after the swap.

Notify URL: ``POST`` with JSON ``{"namespace","name","revision"}`` (never values); a 2xx answer is
an ``ack``. Signal: the process is found again at each revision (the pid in the pid file, or
the main process of a name), then signalled; signalling it needs the same user as the sidecar.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal
from urllib.parse import urlsplit

from hotconf_sidecar._processes import ProcessLookupFailed, find_process
from hotconf_wire.protocol import ConfigSnapshot

__all__ = ["AdapterResult", "FilesAdapter", "NotifyUrlAdapter", "SignalAdapter"]

logger: Final = logging.getLogger("hotconf_sidecar.adapters")

#: Seconds before the notify URL's second attempt, and the most between two attempts.
_FIRST_RETRY: Final = 0.05
_LAST_RETRY: Final = 1.0


@dataclass(frozen=True, slots=True)
class AdapterResult:
    """One adapter's outcome for one revision, reported next to the relay's clients."""

    id: str
    result: Literal["ack", "nack"]
    message: str = ""


class FilesAdapter:
    """Writes each ConfigMap's keys as files and swaps the whole set atomically."""

    id: Final = "adapter:files"

    def __init__(self, root: Path) -> None:
        self.root = root
        self._serial = itertools.count(1)

    def apply(self, snapshot: ConfigSnapshot) -> AdapterResult:
        try:
            self._swap(snapshot)
        except OSError as exc:
            logger.error("files adapter failed for %s: %s", snapshot.ref, exc)
            return AdapterResult(self.id, "nack", f"cannot write files: {exc}")
        return AdapterResult(self.id, "ack")

    def _swap(self, snapshot: ConfigSnapshot) -> None:
        target = self.root / snapshot.name
        target.mkdir(parents=True, exist_ok=True)
        tag = snapshot.revision.rpartition(":")[2][:12]
        fresh = target / f"..{tag}.{os.getpid()}.{next(self._serial)}"
        if fresh.exists():
            shutil.rmtree(fresh)
        fresh.mkdir(mode=0o755)
        items: list[tuple[str, bytes]] = [(k, v.encode()) for k, v in snapshot.data.items()]
        items += list(snapshot.binary_data.items())
        for key, value in items:
            fd = os.open(fresh / key, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            try:
                view = memoryview(value)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
        data = target / "..data"
        staging = target / "..data_tmp"
        staging.unlink(missing_ok=True)
        staging.symlink_to(fresh.name)
        os.replace(staging, data)  # the atomic switch from the old set to the new one
        keys = {key for key, _ in items}
        for key in keys:
            link = target / key
            if not link.is_symlink():
                tmp_link = target / f"..{key}.tmp"
                tmp_link.unlink(missing_ok=True)
                tmp_link.symlink_to(f"..data/{key}")
                os.replace(tmp_link, link)
        for entry in target.iterdir():
            if entry.name.startswith(".."):
                if entry.name not in ("..data", fresh.name) and entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
            elif entry.is_symlink() and entry.name not in keys:
                entry.unlink()  # a key the new revision dropped


class NotifyUrlAdapter:
    """POSTs ``{"namespace","name","revision"}`` to a URL after each revision (HTTP/1.1, h11).

    An application that is not listening yet, or answers 5xx (or 429), is tried again with
    exponential backoff (50 ms, doubling, at most 1 s apart) until ``timeout`` (the sidecar's
    ACK deadline) runs out: a starting application does not NACK, and halt, a staged rollout.
    A 2xx answer is an ACK; any other answer is the application's verdict and a NACK at once.
    """

    id: Final = "adapter:notify-url"

    def __init__(self, url: str, *, timeout: float) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"notify URL {url!r} is not an http(s) URL")
        self.url = url
        self.timeout = timeout
        self._tls = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._tls else 80)
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._authority = parts.netloc.rpartition("@")[2]

    async def notify(
        self, snapshot: ConfigSnapshot, *, deadline: float | None = None
    ) -> AdapterResult:
        """POST the revision; attempts stop at ``deadline`` (the event loop's clock; default:
        the ACK timeout from now)."""
        import h11  # on first use: 0.3 MiB that pods without a notify URL do not pay

        body = json.dumps(
            {"namespace": snapshot.namespace, "name": snapshot.name, "revision": snapshot.revision}
        ).encode()
        loop = asyncio.get_running_loop()
        start = loop.time()
        if deadline is None:
            deadline = start + self.timeout
        delay = _FIRST_RETRY
        attempts = 0
        while True:
            attempts += 1
            try:
                status = await asyncio.wait_for(self._post(body), deadline - loop.time())
                if 200 <= status < 300:
                    return AdapterResult(self.id, "ack")
                failure = f"{self.url} answered {status}"
                retry = status >= 500 or status == 429
            except (OSError, TimeoutError, h11.ProtocolError) as exc:
                failure = f"{self.url}: {str(exc) or type(exc).__name__}"
                retry = not isinstance(exc, h11.ProtocolError)
            if not retry or loop.time() + delay >= deadline:
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, _LAST_RETRY)
        spent = loop.time() - start
        tries = f" ({attempts} attempts in {spent:.1f}s)" if attempts > 1 else ""
        logger.warning("notify URL failed: %s%s", failure, tries)
        return AdapterResult(self.id, "nack", failure + tries)

    async def _post(self, body: bytes) -> int:
        import h11

        reader, writer = await asyncio.open_connection(
            self._host, self._port, ssl=True if self._tls else None
        )
        try:
            conn = h11.Connection(h11.CLIENT)
            request = h11.Request(
                method="POST",
                target=self._target,
                headers=[
                    ("Host", self._authority),
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(body))),
                    ("Connection", "close"),
                    ("User-Agent", "hotconf-sidecar"),
                ],
            )
            writer.write(b"".join(conn.send(e) or b"" for e in (request, h11.Data(data=body))))
            writer.write(conn.send(h11.EndOfMessage()) or b"")
            await writer.drain()
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await reader.read(65536))
                elif isinstance(event, h11.Response):
                    return event.status_code
                elif isinstance(event, h11.ConnectionClosed):
                    raise ConnectionError("the server closed the connection without answering")
        finally:
            writer.close()


class SignalAdapter:
    """Sends a signal to the application's process, found again at each revision.

    The process is the pid in ``pid_file`` or, with ``process``, the one main process of that
    name (:func:`hotconf_sidecar._processes.find_process`); exactly one of the two is given.
    While no process of the name is there (the application is still starting, or a wrapper has
    not yet exec'd it), the lookup is tried again with the notify URL's backoff until the
    push's ACK deadline; several processes, or a refused signal, are a NACK at once.
    """

    id: Final = "adapter:signal"

    def __init__(
        self, signum: signal.Signals, pid_file: Path | None = None, *, process: str | None = None
    ) -> None:
        if (pid_file is None) == (process is None):
            raise ValueError("the signal adapter needs exactly one of a pid file and a process")
        self.signum = signum
        self.pid_file = pid_file
        self.process = process

    def _target(self) -> int:
        if self.process is not None:
            return find_process(self.process)
        assert self.pid_file is not None
        pid = int(self.pid_file.read_text().strip())
        if pid <= 0:
            raise ValueError(f"pid {pid} is not a process the sidecar may signal")
        return pid

    async def _find(self, deadline: float) -> int:
        loop = asyncio.get_running_loop()
        delay = _FIRST_RETRY
        while True:
            try:
                return self._target()
            except ProcessLookupFailed as exc:
                if not exc.none or loop.time() + delay >= deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, _LAST_RETRY)

    async def notify(self, snapshot: ConfigSnapshot, *, deadline: float) -> AdapterResult:
        """Signal the process; wait for a process of the name until ``deadline`` (the event
        loop's clock)."""
        via = f"process {self.process!r}" if self.process is not None else str(self.pid_file)
        try:
            pid = await self._find(deadline)
            os.kill(pid, self.signum)
        except PermissionError as exc:
            message = (
                f"{self.signum.name} to pid {pid} ({via}) not permitted: {exc.strerror}; the "
                f"sidecar may signal only processes running as its own user (runAsUser)"
            )
            logger.warning("signal adapter: %s", message)
            return AdapterResult(self.id, "nack", message)
        except (OSError, ValueError, ProcessLookupFailed) as exc:
            logger.warning("signal %s via %s failed: %s", self.signum.name, via, exc)
            return AdapterResult(self.id, "nack", f"{self.signum.name}: {exc}")
        return AdapterResult(self.id, "ack", f"{self.signum.name} sent to pid {pid}")
