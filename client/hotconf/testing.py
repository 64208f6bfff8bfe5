"""Test doubles for applications that use hotconf: a real relay you drive from a plain test.

``FakeRelay`` runs a :class:`hotconf_wire.relay.Relay` on its own event loop in a background thread
and serves a Unix socket, so the code under test talks wire protocol v1 exactly as it would to a
sidecar. Tests publish configs with plain dicts and read back each client's ACK or NACK::

    with FakeRelay(tmp_path / "hotconf.sock") as relay:
        relay.publish({"app.yaml": "port: 8080\\n"})
        ...  # start hotconf.run(...) with socket=relay.path
        [verdict] = relay.publish({"app.yaml": "port: 9090\\n"}, wait=5)
        assert verdict.result == "ack"

``stop()`` and ``start()`` simulate a sidecar restart; the held configs survive it.

``running(runner)`` is the runner harness: it runs a ``ThreadRunner``, ``ProcessRunner`` or
``AsyncRunner`` in a background thread for the length of a ``with`` block, then closes it (the
task drains) and re-raises whatever the runner raised; an ``AsyncRunner`` that leaves asyncio tasks
running after it stopped fails the block with ``RuntimeError`` naming them::

    with FakeRelay(path) as relay, running(hotconf.ThreadRunner(task, socket=path)) as runner:
        relay.publish({"app.yaml": "port: 9090\n"}, wait=5)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Coroutine, Iterator, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from hotconf._runners._asyncio import AsyncRunner
from hotconf._runners._base import RunnerState, Stop
from hotconf._runners._blocking import BlockingRunner
from hotconf_wire.answers import ClientVerdict
from hotconf_wire.protocol import ConfigMapRef, ConfigSnapshot, compute_revision
from hotconf_wire.relay import ClientStatus, Relay

__all__ = ["FakeRelay", "running", "snapshot"]

T = TypeVar("T")
R = TypeVar("R", BlockingRunner, AsyncRunner)


def snapshot(
    data: Mapping[str, str],
    *,
    binary_data: Mapping[str, bytes] | None = None,
    namespace: str = "default",
    name: str = "app",
) -> ConfigSnapshot:
    """A snapshot of ConfigMap ``namespace/name`` holding ``data``, with its content revision."""
    binary = dict(binary_data or {})
    return ConfigSnapshot(namespace, name, compute_revision(data, binary), dict(data), binary)


class FakeRelay:
    """A relay in a background thread, driven with blocking calls; see the module docstring."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        namespace: str = "default",
        name: str = "app",
        heartbeat_interval: float = 5.0,
    ) -> None:
        self.path = Path(path)
        self.ref = ConfigMapRef(namespace, name)
        self._heartbeat_interval = heartbeat_interval
        self._held: list[ConfigSnapshot] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._relay: Relay | None = None

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            coroutine.close()
            raise RuntimeError("FakeRelay is stopped; call start() first")
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result()

    def start(self) -> FakeRelay:
        """Serve the socket (again), with every config published so far."""
        if self._loop is not None:
            raise RuntimeError("FakeRelay is already running")
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=serve, name="hotconf-fake-relay", daemon=True)
        self._thread.start()
        ready.wait()
        self._loop = loop
        relay = Relay(
            self.path, server_name="hotconf-fake-relay", heartbeat_interval=self._heartbeat_interval
        )
        relay.load(self._held)
        try:
            self._call(relay.start())
        except BaseException:
            # Do not leave the loop's thread behind when the socket cannot be served.
            self._loop = None
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join()
            loop.close()
            raise
        self._relay = relay
        return self

    def stop(self) -> None:
        """Close the socket and every connection, like a sidecar that exits."""
        if self._loop is None or self._relay is None:
            return
        self._held = list(self._relay.snapshots.values())
        self._call(self._relay.aclose())
        loop, self._loop = self._loop, None
        loop.call_soon_threadsafe(loop.stop)
        assert self._thread is not None
        self._thread.join()
        loop.close()
        self._relay = None

    def __enter__(self) -> FakeRelay:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def publish(
        self,
        config: Mapping[str, str] | ConfigSnapshot,
        *,
        wait: float | None = None,
    ) -> list[ClientVerdict]:
        """Publish ``config`` (a data dict or a snapshot) and, with ``wait``, the verdicts."""
        if not isinstance(config, ConfigSnapshot):
            config = snapshot(config, namespace=self.ref.namespace, name=self.ref.name)
        if self._relay is None:
            self._held = [s for s in self._held if s.ref != config.ref] + [config]
            return []
        return self._call(self._relay.publish(config, wait=wait))

    def clients(self) -> list[ClientStatus]:
        """The clients connected now."""
        if self._relay is None:
            return []
        relay = self._relay

        async def read() -> list[ClientStatus]:
            return relay.clients()

        return self._call(read())


@contextlib.contextmanager
def running(runner: R) -> Iterator[R]:
    """Run ``runner`` in a background thread while the block runs; see the module docstring."""
    errors: list[BaseException] = []
    loop = asyncio.new_event_loop() if isinstance(runner, AsyncRunner) else None

    async def arun_without_leaks(runner: AsyncRunner) -> None:
        await runner.arun()
        current = asyncio.current_task()
        leftover = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        for task in leftover:
            task.cancel()
        if leftover:
            names = ", ".join(sorted(t.get_name() for t in leftover))
            raise RuntimeError(f"the runner left asyncio tasks running after it stopped: {names}")

    def main() -> None:
        try:
            if isinstance(runner, AsyncRunner):
                assert loop is not None
                loop.run_until_complete(arun_without_leaks(runner))
            else:
                runner.run()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=main, name="hotconf-runner-harness", daemon=True)
    thread.start()
    while runner.state is RunnerState.CREATED and thread.is_alive():
        time.sleep(0.001)
    try:
        yield runner
    finally:
        if isinstance(runner, AsyncRunner):
            assert loop is not None
            with contextlib.suppress(RuntimeError):  # the loop ended: the runner already stopped
                loop.call_soon_threadsafe(runner._post, Stop("close()"))
        else:
            runner.close()
        thread.join()
        if loop is not None:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
    if errors:
        raise errors[0]
