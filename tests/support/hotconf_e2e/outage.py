"""A TCP proxy in front of the emulated API that a test can cut and restore: an API outage.

The operator is pointed at the proxy; :meth:`ApiProxy.cut` closes every open connection (its
watch streams end mid-flight, as when an API server restarts) and refuses new ones until
:meth:`ApiProxy.restore`. The emulator itself keeps running, so a test can change objects
behind the operator's back during the outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from concurrent.futures import Future
from typing import Any


class ApiProxy:
    """Forward ``<host>:<port>`` to ``<host>:<upstream_port>``, in a background thread (the API
    server's port; or a pod's sidecar on the pod's 127.0.0.x, to cut a pod off the network)."""

    def __init__(self, upstream_port: int, *, port: int = 0, host: str = "127.0.0.1") -> None:
        self.upstream_port = upstream_port
        self.port = port
        self.host = host
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="api-proxy")
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _call(self, coroutine: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout=10)

    def start(self) -> ApiProxy:
        self._thread.start()
        self.restore()
        return self

    def restore(self) -> None:
        """Accept connections again (on the same port)."""
        self._call(self._listen())

    def cut(self) -> None:
        """Drop every connection and stop accepting new ones."""
        self._call(self._cut())

    def stop(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        # A connection accepted just before the close has its handler task created but not yet
        # started: let it start (it registers its writer first thing), or its transport would
        # outlive the proxy and warn as unclosed in some later test.
        await asyncio.sleep(0)
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                self.host, self.upstream_port
            )
            self._writers.add(upstream_writer)

            async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
                while chunk := await src.read(65536):
                    dst.write(chunk)
                    await dst.drain()
                with contextlib.suppress(OSError):
                    dst.write_eof()

            await asyncio.gather(pump(reader, upstream_writer), pump(upstream_reader, writer))
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            for w in (writer, upstream_writer):
                if w is not None:
                    self._writers.discard(w)
                    w.transport.abort()
            self._tasks.discard(task)
