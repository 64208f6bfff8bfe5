"""``hotconf dev``: the relay for a laptop, fed by a ConfigMap manifest file instead of a cluster.

Called by :mod:`hotconf._cli`. It checks the manifest (:mod:`hotconf._manifest`), serves it with
the real relay (:class:`hotconf_wire.relay.Relay`, wire protocol v1) on a private Unix socket in a
fresh temporary directory (mode 0700, socket 0600), starts COMMAND with ``HOTCONF_SOCKET`` and
``HOTCONF_NAMESPACE`` set, and relays each saved revision. The file's directory is watched, so
editors that save by writing a temporary file and renaming it over the original work; with the
``local`` extra (watchfiles) it reacts within milliseconds, without it it polls every 100 ms.
A save that does not parse or is not a ConfigMap prints the error with file and line and is not
relayed: the application keeps its last good config, and the message names the revision it
runs (from its ACKs: one it NACKed it does not run). Each client's ACK or NACK is printed.

COMMAND runs in its own process group, so a terminal's Ctrl-C reaches hotconf dev once; hotconf
dev forwards SIGINT/SIGTERM to COMMAND, waits ``stop_timeout`` seconds, then kills its group, and
exits with COMMAND's status (128 + N for a signal N).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Final

from hotconf._errors import ConfigParseError
from hotconf._manifest import load_configmap
from hotconf._parent_death import parent_death_signal
from hotconf_wire.protocol import ConfigSnapshot
from hotconf_wire.relay import Relay

__all__ = ["DevSettings", "run_dev"]

#: How often the polling watcher (no watchfiles) looks at the file.
POLL_INTERVAL: Final = 0.1


@dataclass(frozen=True, slots=True)
class DevSettings:
    """The options of ``hotconf dev`` (from its command line, parsed in :mod:`hotconf._cli`)."""

    #: The ConfigMap manifest file to serve and watch.
    configmap: Path
    #: The program to run, with its arguments.
    command: tuple[str, ...]
    #: Seconds COMMAND gets to exit after the forwarded signal before it is killed. Longer than
    #: the runners' default drain_timeout (10 s) so a draining app is not cut short.
    stop_timeout: float = 20.0
    #: Poll the file instead of using watchfiles (for file systems without inotify).
    poll: bool = False


def say(message: str) -> None:
    print(f"hotconf dev: {message}", file=sys.stderr, flush=True)


def _short(revision: str) -> str:
    return revision[:19]


class _Dev:
    def __init__(self, settings: DevSettings, relay: Relay, snapshot: ConfigSnapshot) -> None:
        self.settings = settings
        self.relay = relay
        self.current = snapshot
        self.last_text: str | None = None
        self.reported: dict[tuple[str, str], tuple[str, str]] = {}
        #: client id -> the revision it last ACKed: what it runs (a NACKed one it does not).
        self.runs: dict[str, str] = {}

    def _what_runs(self) -> str:
        """What the connected applications run, from their ACKs (not the last one relayed: an
        application that NACKed it keeps the one before)."""
        connected = {client.id for client in self.relay.clients()}
        revisions = sorted({r for cid, r in self.runs.items() if cid in connected})
        if not revisions:
            return "no application runs a revision of it yet"
        if len(revisions) == 1:
            return f"the application keeps revision {_short(revisions[0])}"
        return "the applications keep revisions " + ", ".join(_short(r) for r in revisions)

    async def changed(self) -> None:
        """The file may have changed: relay it if it is a new, valid revision."""
        path = self.settings.configmap
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return  # mid-rename; the next event brings the new file
        if text == self.last_text:
            return
        self.last_text = text
        try:
            snapshot = load_configmap(path)
        except ConfigParseError as exc:
            say(f"error: {exc}")
            say(f"not relayed; {self._what_runs()}")
            return
        if snapshot.ref != self.current.ref:
            say(
                f"error: {path}: the ConfigMap is now {snapshot.ref}, was {self.current.ref}; "
                "restart hotconf dev to serve another ConfigMap"
            )
            return
        if snapshot.revision == self.current.revision:
            return
        self.current = snapshot
        say(f"relaying revision {_short(snapshot.revision)} of {snapshot.ref}")
        await self.relay.publish(snapshot)

    async def report(self) -> None:
        """Print each client's verdict on each revision once."""
        while True:
            for client in self.relay.clients():
                for ref, verdict in client.verdicts.items():
                    key = (client.id, str(ref))
                    seen = (verdict.revision, verdict.result)
                    if verdict.result == "pending" or self.reported.get(key) == seen:
                        continue
                    self.reported[key] = seen
                    who = f"{client.client or client.id} (pid {client.pid})"
                    if verdict.result == "ack":
                        self.runs[client.id] = verdict.revision
                        say(f"{who} runs revision {_short(verdict.revision)} (ACK)")
                    elif verdict.result == "nack":
                        say(
                            f"{who} rejected revision {_short(verdict.revision)} (NACK): "
                            f"{verdict.message}"
                        )
            await asyncio.sleep(0.05)


async def _watch(settings: DevSettings, changed: Callable[[], Awaitable[None]]) -> None:
    path = settings.configmap
    watchfiles: ModuleType | None = None
    if not settings.poll:
        try:
            watchfiles = importlib.import_module("watchfiles")
        except ImportError:
            say("watchfiles is not installed (pip install 'hotconf[local]'); polling the file")
    if watchfiles is not None:
        # step: ms of quiet before a batch of changes is yielded; debounce: longest batch.
        async for changes in watchfiles.awatch(path.parent, debounce=200, step=5):
            if any(Path(p).name == path.name for _, p in changes):
                await changed()
        return
    last: tuple[int, int, int] | None = None
    while True:
        try:
            st = path.stat()
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            stamp = None
        if stamp is not None and stamp != last:
            last = stamp
            await changed()
        await asyncio.sleep(POLL_INTERVAL)


async def run_dev(settings: DevSettings) -> int:
    """Serve the file, run COMMAND, relay saves; return the exit status for hotconf dev."""
    path = settings.configmap
    try:
        snapshot = load_configmap(path)
    except ConfigParseError as exc:
        say(f"error: {exc}")
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="hotconf-dev-"))
    socket_path = workdir / "hotconf.sock"
    relay = Relay(socket_path, server_name="hotconf dev", socket_mode=0o600)
    relay.load([snapshot])
    loop = asyncio.get_running_loop()
    received: list[int] = []
    stop = asyncio.Event()

    def on_signal(sig: int) -> None:
        received.append(sig)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    helpers: list[asyncio.Task[None]] = []
    try:
        await relay.start()
        env = {
            **os.environ,
            "HOTCONF_SOCKET": str(socket_path),
            "HOTCONF_NAMESPACE": snapshot.namespace,
        }
        try:
            process = await asyncio.create_subprocess_exec(
                *settings.command,
                env=env,
                process_group=0,
                # Own process group: nothing else stops COMMAND if we are killed outright
                # (SIGKILL); Linux's parent-death signal does. Elsewhere it outlives us.
                preexec_fn=parent_death_signal(signal.SIGTERM),
            )
        except OSError as exc:
            say(f"error: cannot start {settings.command[0]!r}: {exc.strerror or exc}")
            return 127
        say(
            f"serving {path} ({snapshot.ref}, revision {_short(snapshot.revision)}) on "
            f"{socket_path}; started {' '.join(settings.command)} (pid {process.pid})"
        )
        dev = _Dev(settings, relay, snapshot)
        dev.last_text = path.read_text(encoding="utf-8", errors="replace")
        helpers = [
            asyncio.create_task(_watch(settings, dev.changed), name="hotconf-dev-watch"),
            asyncio.create_task(dev.report(), name="hotconf-dev-report"),
        ]
        exited = asyncio.create_task(process.wait())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait([exited, stopping], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not exited.done():
            signum = received[0]
            name = signal.Signals(signum).name
            say(f"{name}: stopping {settings.command[0]} (pid {process.pid})")
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signum)
            done, _ = await asyncio.wait([exited], timeout=settings.stop_timeout)
            if not done:
                say(
                    f"{settings.command[0]} still runs after {settings.stop_timeout:g}s; killing it"
                )
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)  # its leftovers too
        code = await exited
        status = code if code >= 0 else 128 - code
        say(f"{settings.command[0]} exited with status {status}")
        return status
    finally:
        for task in helpers:
            task.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await relay.aclose()
        shutil.rmtree(workdir, ignore_errors=True)
