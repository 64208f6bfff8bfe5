"""``EmulatorServer``: a ``KubeEmulator`` served over real HTTP on loopback, in this process.

Used by tests that run in the same event loop as the emulator, by the CLI (``__main__``) and
by the pytest fixtures. ``write_kubeconfig`` writes a kubeconfig that kubectl, kopf and the
official client accept (plain HTTP, a dummy token).
"""

from __future__ import annotations

import enum
import pathlib
from types import TracebackType
from typing import Self

import kmock
import yaml

from ._emulator import KubeEmulator


class ServerStateError(RuntimeError):
    """The server was used in a state that does not allow it (e.g. started twice)."""


class ServerState(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPED = "stopped"


def kubeconfig_text(url: str, *, namespace: str = "default") -> str:
    """A kubeconfig for the emulator at ``url`` (HTTP, a dummy bearer token)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kube-emulator", "cluster": {"server": url}}],
        "users": [{"name": "kube-emulator", "user": {"token": "kube-emulator"}}],
        "contexts": [
            {
                "name": "kube-emulator",
                "context": {
                    "cluster": "kube-emulator",
                    "user": "kube-emulator",
                    "namespace": namespace,
                },
            }
        ],
        "current-context": "kube-emulator",
        "preferences": {},
    }
    return yaml.safe_dump(config, sort_keys=False)


def write_kubeconfig(path: str | pathlib.Path, url: str, *, namespace: str = "default") -> None:
    """Write the kubeconfig atomically (a reader never sees half a file)."""
    target = pathlib.Path(path)
    partial = target.with_name(target.name + ".partial")
    partial.write_text(kubeconfig_text(url, namespace=namespace))
    partial.replace(target)


class EmulatorServer:
    """Serve a ``KubeEmulator`` over HTTP until stopped::

    async with EmulatorServer() as server:
        server.write_kubeconfig(tmp_path / "kubeconfig")
        ... server.url, server.port, server.emulator.store ...
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        emulator: KubeEmulator | None = None,
    ) -> None:
        self.emulator = emulator if emulator is not None else KubeEmulator()
        self._host = host
        self._port = port
        self._server: kmock.Server | None = None
        self.state = ServerState.NEW

    @property
    def port(self) -> int:
        return self._require_running().port

    @property
    def url(self) -> str:
        server = self._require_running()
        return f"http://{self._host}:{server.port}"

    def _require_running(self) -> kmock.Server:
        if self.state is not ServerState.RUNNING or self._server is None:
            raise ServerStateError(
                f"the emulator server is {self.state.value}, not running;"
                " start it first (await server.start() or async with)"
            )
        return self._server

    async def start(self) -> None:
        if self.state is not ServerState.NEW:
            raise ServerStateError(
                f"the emulator server is {self.state.value}; a server"
                " starts once, make a new EmulatorServer instead"
            )
        await self.emulator.__aenter__()
        server = kmock.Server(self.emulator, host=self._host, port=self._port or None)
        try:
            await server.__aenter__()
        except BaseException:
            await self.emulator.__aexit__(None, None, None)
            raise
        self._server = server
        self.state = ServerState.RUNNING

    async def stop(self) -> None:
        """End every watch, then stop serving; idempotent."""
        if self.state is not ServerState.RUNNING or self._server is None:
            self.state = ServerState.STOPPED
            return
        self.state = ServerState.STOPPED
        self.emulator.store.close()
        server, self._server = self._server, None
        try:
            await server.__aexit__(None, None, None)
        finally:
            await self.emulator.__aexit__(None, None, None)

    def write_kubeconfig(self, path: str | pathlib.Path, *, namespace: str = "default") -> None:
        write_kubeconfig(path, self.url, namespace=namespace)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()
