"""The emulator as a process: ``python -m kube_emulator --port 0 --kubeconfig PATH``.

Serves over HTTP until SIGTERM or SIGINT, then ends every watch and exits 0. Once listening,
it writes the kubeconfig, then the port to ``--ready-file`` (or prints it if none is given);
waiting for the ready file therefore means the kubeconfig is in place too.
Started by ``_process.EmulatorProcess`` (the pytest fixtures) and by benchmarks.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import pathlib
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from ._emulator import KubeEmulator
from ._server import EmulatorServer


@dataclass(frozen=True, kw_only=True)
class Settings:
    host: str  # loopback by default: the emulator has no authentication at all
    port: int  # 0 = any free port, reported in the ready file
    kubeconfig: pathlib.Path | None
    ready_file: pathlib.Path | None
    namespace: str  # the kubeconfig context's default namespace
    history: int  # answered requests kept for debugging (0: none; memory and speed stay flat)

    @classmethod
    def parse(cls, argv: Sequence[str] | None = None) -> Settings:
        parser = argparse.ArgumentParser(prog="python -m kube_emulator", description=__doc__)
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
        parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one")
        parser.add_argument("--kubeconfig", type=pathlib.Path, help="write a kubeconfig here")
        parser.add_argument(
            "--ready-file",
            type=pathlib.Path,
            help="write the port here once serving (else print it)",
        )
        parser.add_argument(
            "--namespace", default="default", help="default namespace of the kubeconfig context"
        )
        parser.add_argument(
            "--history", type=int, default=0, help="answered requests to keep in memory (debugging)"
        )
        args = parser.parse_args(argv)
        return cls(
            host=args.host,
            port=args.port,
            kubeconfig=args.kubeconfig,
            ready_file=args.ready_file,
            namespace=args.namespace,
            history=args.history,
        )


async def serve(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with EmulatorServer(
        host=settings.host, port=settings.port, emulator=KubeEmulator(history=settings.history)
    ) as server:
        if settings.kubeconfig is not None:
            server.write_kubeconfig(settings.kubeconfig, namespace=settings.namespace)
        if settings.ready_file is not None:
            partial = settings.ready_file.with_name(settings.ready_file.name + ".partial")
            partial.write_text(f"{server.port}\n")
            partial.replace(settings.ready_file)
        else:
            print(server.port, flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(serve(Settings.parse(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
