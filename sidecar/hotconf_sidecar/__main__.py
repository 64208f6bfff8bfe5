"""``hotconf-sidecar``: parse settings, start the relay and the HTTP API, stop on SIGTERM.

Exit status: 0 after a SIGTERM/SIGINT stop, 2 for bad settings, 1 when it cannot start (the
socket path is in use, the state directory is unusable, the port is taken).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Final

from hotconf_sidecar._errors import SettingsError
from hotconf_sidecar._settings import EventLoop, Settings, parse_settings
from hotconf_wire.errors import HotconfError
from hotconf_wire.trace import Tracer

__all__ = ["main"]

logger: Final = logging.getLogger("hotconf_sidecar")


async def serve(settings: Settings) -> None:
    """Run the sidecar until SIGTERM or SIGINT, then stop gracefully."""
    from hotconf_sidecar._adapters import FilesAdapter, NotifyUrlAdapter, SignalAdapter
    from hotconf_sidecar._http import HttpServer
    from hotconf_sidecar._keys import load_public_keys
    from hotconf_sidecar._sidecar import Sidecar
    from hotconf_sidecar._store import Store
    from hotconf_sidecar._trust import Trust
    from hotconf_sidecar._verify import Verifier
    from hotconf_wire.relay import Relay

    adapters = settings.adapters
    sidecar = Sidecar(
        pod=settings.pod,
        verifier=Verifier(
            Trust(load_public_keys(settings.public_key_pem), state_dir=settings.state_dir),
            pod=settings.pod,
        ),
        store=Store(settings.state_dir, fsync=settings.fsync),
        relay=Relay(
            settings.socket, server_name="hotconf-sidecar", socket_mode=settings.socket_mode
        ),
        ack_timeout=settings.ack_timeout,
        tracer=Tracer(settings.trace_file, proc="sidecar"),
        files=FilesAdapter(adapters.files_dir) if adapters.files_dir else None,
        notify_url=(
            NotifyUrlAdapter(adapters.notify_url, timeout=settings.ack_timeout)
            if adapters.notify_url
            else None
        ),
        signal=(
            SignalAdapter(adapters.notify_signal, adapters.notify_pid_file)
            if adapters.notify_signal and adapters.notify_pid_file
            else None
        ),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    http = HttpServer(sidecar, host=settings.listen_host, port=settings.listen_port)
    try:
        addresses = await http.start()
        logger.info("HTTP API listening on %s", " ".join(f"{h}:{p}" for h, p in addresses))
        await sidecar.start()
        # Everything alive now (modules, the key, the loaded state) lives as long as the process:
        # keep it out of the collector's full passes, which otherwise walk ~30,000 objects
        # (about 5 ms, a latency spike on the push that triggers one).
        gc.freeze()
        logger.info(
            "serving pod %s on socket %s (mode %o), state in %s, %s event loop",
            settings.pod,
            settings.socket,
            settings.socket_mode,
            settings.state_dir,
            type(loop).__module__.partition(".")[0],
        )
        await stop.wait()
        logger.info("stopping: no new pushes, draining")
        await sidecar.aclose(deadline=settings.ack_timeout + 1.0)
    finally:
        await sidecar.aclose(deadline=0)
        await http.aclose()
    logger.info("stopped")


def loop_factory(choice: EventLoop) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop ``--event-loop`` asks for: uvloop's factory, or ``None`` for asyncio's.

    uvloop runs the push path with about a tenth less CPU (see ``docs/performance.md``); ``auto``
    falls back to asyncio when it is not installed. Raises ``SettingsError`` for ``uvloop``
    without uvloop.
    """
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise SettingsError("--event-loop uvloop: uvloop is not installed") from None
        return None
    return uvloop.new_event_loop


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point of ``hotconf-sidecar``."""
    from hotconf_wire.logs import setup_logging

    try:
        settings = parse_settings(sys.argv[1:] if argv is None else argv, os.environ)
    except SettingsError as exc:
        print(f"hotconf-sidecar: {exc}", file=sys.stderr)
        return 2
    try:
        factory = loop_factory(settings.event_loop)
    except SettingsError as exc:
        print(f"hotconf-sidecar: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level.number, settings.log_format)
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(serve(settings))
    except Exception as exc:
        # Our errors (a bad key, an unusable state directory, the socket in use) and the OS's say
        # what is wrong; anything else is a bug, logged with its traceback.
        expected = isinstance(exc, HotconfError | OSError | ValueError)
        logger.error("cannot run: %s", exc, exc_info=not expected)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
