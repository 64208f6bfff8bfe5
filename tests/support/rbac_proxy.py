"""An HTTP proxy in front of the emulated API that enforces a set of RBAC rules: least privilege,
tested.

The emulator has no authorization (any token works), so a chart's rights are otherwise only
read, never exercised. Point a process at :class:`RbacProxy` (its kubeconfig) and every request
for an API resource is checked against the rules given (ClusterRole rules anywhere, Role rules
in their namespace), as the API server's RBAC authorizer would: allowed requests are forwarded
(watch streams included), others get a ``403 Forbidden`` Status and are recorded in ``denied``.
Every request is recorded in ``seen`` as a :class:`Access`, for assertions on which verbs a
process really used. Discovery paths (``/api``, ``/apis/...`` without a resource, ``/version``)
pass unchecked, as ``system:discovery`` allows them to everyone.

Used by ``tests/packaging/test_chart_ha.py`` (the chart's peering rights, with real operators).
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

_FORWARDED = ("Accept", "Accept-Encoding", "Content-Type", "Authorization", "User-Agent")
_RETURNED = ("Content-Type", "Content-Encoding")


@dataclass(frozen=True)
class Access:
    """One request for an API resource, as RBAC sees it."""

    verb: str
    group: str
    resource: str  # "pods", or "pods/status" for a subresource
    namespace: str | None
    name: str | None


@dataclass(frozen=True)
class Grant:
    """A rule of a Role (``namespace`` set) or a ClusterRole (``namespace`` None)."""

    namespace: str | None
    rule: dict[str, Any]

    def allows(self, access: Access) -> bool:
        rule = self.rule
        if self.namespace is not None and access.namespace != self.namespace:
            return False
        if access.group not in rule.get("apiGroups", ()):
            return False
        if access.resource not in rule.get("resources", ()):
            return False
        if access.verb not in rule.get("verbs", ()):
            return False
        names = rule.get("resourceNames")
        return not names or access.name in names


def parse_access(method: str, path: str, query: dict[str, str]) -> Access | None:
    """The RBAC view of a request, or None for a discovery (non-resource) path."""
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, rest = "", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, rest = parts[1], parts[3:]
    else:
        return None
    watch = query.get("watch", "").lower() in {"true", "1"}
    if rest[:1] == ["watch"]:
        watch, rest = True, rest[1:]
    if not rest:
        return None
    namespace: str | None = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else None
    if len(rest) > 2:
        resource = f"{resource}/{rest[2]}"
    verb = {
        "GET": "watch" if watch else ("get" if name else "list"),
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete" if name else "deletecollection",
    }[method]
    return Access(verb=verb, group=group, resource=resource, namespace=namespace, name=name)


class RbacProxy:
    """Forward ``127.0.0.1:<port>`` to ``upstream`` (a URL), enforcing ``grants``; runs its own
    event loop in a background thread (``start``/``stop``, or ``with``)."""

    def __init__(self, upstream: str, grants: list[Grant]) -> None:
        self.upstream = upstream.rstrip("/")
        self.grants = grants
        self.seen: list[Access] = []
        self.denied: list[Access] = []
        self.port = 0
        # Made by start(): an instance used only for allows() holds no loop (no sockets to leak).
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def allows(self, access: Access) -> bool:
        return any(grant.allows(access) for grant in self.grants)

    def _call(self, coroutine: Any) -> Any:
        assert self._loop is not None, "RbacProxy is not started"
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout=15)

    def start(self) -> RbacProxy:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="rbac-proxy")
        self._thread.start()
        self._call(self._start())
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        try:
            self._call(self._stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()
            self._loop = self._thread = None

    def __enter__(self) -> RbacProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        # Streams still open (watches a client never closed) end here, not with the loop.
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        access = parse_access(request.method, request.path, dict(request.query))
        if access is not None:
            self.seen.append(access)
            if not self.allows(access):
                self.denied.append(access)
                return web.json_response(
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "status": "Failure",
                        "reason": "Forbidden",
                        "code": 403,
                        "message": f"forbidden by the chart's rules: {access}",
                    },
                    status=403,
                )
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k in _FORWARDED}
        body = await request.read()
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=body or None,
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
        ) as upstream:
            response = web.StreamResponse(status=upstream.status)
            for header in _RETURNED:
                if header in upstream.headers:
                    response.headers[header] = upstream.headers[header]
            await response.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            except (ConnectionResetError, aiohttp.ClientError):
                pass  # either side went away: a watch that ended
            return response
