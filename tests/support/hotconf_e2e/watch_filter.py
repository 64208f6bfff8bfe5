"""A plain-HTTP proxy in front of the real API server that drops ConfigMap watch events on demand.

Every watch-based tool can miss an event (a watch that silently stops delivering, an event lost
between a relist and a resume): this makes one happen on purpose. The operator is pointed at
the proxy (:meth:`WatchFilter.kubeconfig`: the same user, the proxy's ``http://`` address);
every request goes through unchanged to the API server over TLS, except that while
:attr:`WatchFilter.dropping` is set, the ADDED and MODIFIED events of ConfigMap watch streams
are left out (counted in :attr:`WatchFilter.dropped`). The API server keeps the change; only the
operator's watch does not see it.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web

_HOP_BY_HOP = {"host", "content-length", "transfer-encoding", "connection", "accept-encoding"}


class WatchFilter:
    """Forward ``http://127.0.0.1:<port>`` to ``upstream`` (https), in a background thread."""

    def __init__(self, upstream: str, *, ca_cert: Path) -> None:
        self.upstream = upstream.rstrip("/")
        self.ca_cert = ca_cert
        self.port = 0
        self.dropping = threading.Event()
        self.dropped = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="watch-filter")
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    def _call(self, coroutine: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout=30)

    def start(self) -> WatchFilter:
        self._thread.start()
        self._call(self._start())
        return self

    def stop(self) -> None:
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def kubeconfig(self, source: Path, target: Path) -> Path:
        """``source`` (a kubeconfig of this API server) with the proxy as its server."""
        config = yaml.safe_load(source.read_text())
        for cluster in config["clusters"]:
            cluster["cluster"] = {"server": f"http://127.0.0.1:{self.port}"}
        target.write_text(yaml.safe_dump(config))
        target.chmod(0o600)
        return target

    async def _start(self) -> None:
        context = ssl.create_default_context(cafile=str(self.ca_cert))
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            auto_decompress=False,
        )
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._forward)
        self._runner = web.AppRunner(app, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def _drops(self, line: bytes) -> bool:
        if not self.dropping.is_set():
            return False
        try:
            kind = json.loads(line).get("type")
        except ValueError:
            return False
        if kind in ("ADDED", "MODIFIED"):
            self.dropped += 1
            return True
        return False

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        body = await request.read()
        watch = request.query.get("watch", "").lower() in ("true", "1")
        filtered = watch and request.path.endswith("/configmaps")
        async with self._session.request(
            request.method, self.upstream + request.path_qs, data=body or None, headers=headers
        ) as upstream:
            response = web.StreamResponse(status=upstream.status)
            for key in ("Content-Type", "Content-Encoding", "Audit-Id"):
                if key in upstream.headers:
                    response.headers[key] = upstream.headers[key]
            await response.prepare(request)
            try:
                if filtered:
                    async for line in upstream.content:
                        if not self._drops(line):
                            await response.write(line)
                else:
                    async for chunk in upstream.content.iter_any():
                        await response.write(chunk)
                await response.write_eof()
            except (ConnectionResetError, aiohttp.ClientError):
                pass
            return response
