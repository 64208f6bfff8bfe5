"""``KubeEmulator``: kmock's ``KubernetesEmulator`` made good enough for kopf, kubectl and clients.

Used in-process by ``_server.EmulatorServer`` (and so by the CLI and the pytest fixtures).
kmock still routes every request (user reactions first, so a test can inject faults with
``emulator["patch", kmock.resource("v1", "configmaps")] << 500``) and still serves the
discovery endpoints; this class replaces the rest:

- requests are parsed by ``_requests`` (namespaces, ``watch=True``, PUT, YAML bodies);
- objects live in ``_store.Store`` (resourceVersion, uid, creationTimestamp, selectors,
  watches from a resourceVersion with ``timeoutSeconds``, finalizers, conflicts);
- errors are standard ``Status`` objects (``_errors``);
- answered requests are forgotten: kmock keeps every request and scans them all to route the
  next one (0.1 ms more per earlier request); only the last ``history`` are kept, for debugging;
- while no test has added reactions, a resource request skips kmock's routing (which would try
  every built-in reaction's filters before reaching the resource fallback): 1.4 -> 1.0 ms of
  CPU per PATCH with a watch open.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import gzip
import importlib.resources
import itertools
import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp.web
import attrs
import kmock
from kmock._internal import rendering  # StreamingError: how kmock reports a failed stream

from . import _patching
from ._errors import ApiError, BadRequest, Gone, MethodNotAllowed, NotFound, UnsupportedMediaType
from ._requests import parse_request
from ._selectors import Selector
from ._store import BUILTIN_NAMESPACES, Kind, Obj, Store, Watch

logger = logging.getLogger("kube_emulator")

# Resources served besides kmock's bundled K3s 1.26 list: kopf's peering resources.
EXTRA_RESOURCES: dict[str, dict[str, Any]] = {
    "kopf.dev/v1/clusterkopfpeerings": {
        "kind": "ClusterKopfPeering",
        "singular": "clusterkopfpeering",
        "namespaced": False,
        "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
        "shortnames": [],
        "categories": [],
        "subresources": [],
    },
    "kopf.dev/v1/kopfpeerings": {
        "kind": "KopfPeering",
        "singular": "kopfpeering",
        "namespaced": True,
        "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
        "shortnames": [],
        "categories": [],
        "subresources": [],
    },
}


@functools.cache
def _bundled_resources() -> bytes:
    """kmock's bundled resource list (K3s 1.26), read once; kmock reads it with a deprecated
    importlib call that fails the suite (filterwarnings=error)."""
    data = importlib.resources.files("kmock._internal").joinpath("resources.json.gz").read_bytes()
    return gzip.decompress(data)


WATCH_POLL_SECONDS = 0.5  # how often an idle watch checks whether its client has gone


class _Delegated(Exception):
    """Raised by the resource fallback reaction: the emulator answers the request itself."""


def _delegate() -> None:
    raise _Delegated


def _is_resource_request(request: kmock.Request) -> bool:
    return request.resource is not None and request.resource.plural is not None


@attrs.define(kw_only=True)
class KubeEmulator(kmock.KubernetesEmulator):
    """An in-memory Kubernetes API; serve it with ``kmock.Server`` or ``EmulatorServer``."""

    store: Store = attrs.field(factory=Store)
    history: int = 0  # how many answered requests to keep in ``recent_requests``
    recent_requests: collections.deque[kmock.Request] = attrs.field(init=False)
    unexpected_errors: collections.deque[BaseException] = attrs.field(
        factory=lambda: collections.deque(maxlen=100), init=False
    )
    _own_reactions: tuple[Any, ...] = attrs.field(factory=tuple, init=False)
    _ids: itertools.count[int] = attrs.field(factory=itertools.count, init=False)

    def __attrs_post_init__(self) -> None:
        # Not kmock's routes: they parse no selectors, give no resourceVersions, know no PUT.
        self.recent_requests = collections.deque(maxlen=self.history)
        self.resources.load_data(_bundled_resources())
        for key, info in EXTRA_RESOURCES.items():
            self.resources[key] = kmock.ResourceInfo(**info)
        for namespace in BUILTIN_NAMESPACES:
            self.store.create(
                self._kind_of(kmock.resource("v1/namespaces")),
                None,
                {"metadata": {"name": namespace}},
            )
        self.fallback.fallback << self._serve_unknown
        self.fallback["get", re.compile(r"/apis/[^/]+/[^/]+")] << self._serve_version
        self.fallback["get", re.compile(r"/apis/[^/]+")] << self._serve_group
        self.fallback["get", re.compile(r"/api/[^/]+")] << self._serve_version
        self.fallback["get /version"] << self._serve_server_version
        self.fallback["get /apis"] << self._serve_apis
        self.fallback["get /api"] << self._serve_api
        self.fallback["get /"] << self._serve_root
        self.fallback[_is_resource_request] << _delegate
        self._own_reactions = tuple(self._payloads)

    def _has_test_reactions(self) -> bool:
        """Whether a test added (or replaced) reactions since the emulator registered its own."""
        payloads, own = self._payloads, self._own_reactions
        if len(payloads) != len(own):
            return True
        return any(a is not b for a, b in zip(payloads, own, strict=True))

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        # kmock routes first, so that a test's own reactions (faults, delays) win; the resource
        # fallback hands the request back here, to be answered without kmock's rendering
        # (which gives every answer of a reaction the status code of the first one).
        # Not KubernetesEmulator._handle: it keeps kmock's own copy of every object.
        # Without reactions of a test, routing would only end at the resource fallback: kmock
        # tries every reaction's filters first, which is half the cost of a request.
        if _is_resource_request(request) and not self._has_test_reactions():
            return await self._respond(request)
        try:
            return await kmock.RawHandler._handle(self, request)
        except _Delegated:
            return await self._respond(request)

    # -- request lifecycle -------------------------------------------------------------------

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        raw_response: aiohttp.web.StreamResponse | None = None
        request: kmock.Request | None = None
        try:
            request = await parse_request(raw_request, id=next(self._ids))
            self._requests.append(request)  # kmock routes only the requests it holds
            try:
                return await self._handle(request)
            except rendering.StreamingError as exc:
                raw_response = exc.args[0]
                raise exc.__cause__ or exc from None
        except Exception as exc:
            if not isinstance(exc, ApiError):
                self.unexpected_errors.append(exc)
                logger.error(
                    "kube-emulator failed on %s %s",
                    raw_request.method,
                    raw_request.path_qs,
                    exc_info=exc,
                )
            if raw_response is None or not raw_response.prepared:
                return await self._render_error(exc)
            await self._stream_error(exc, raw_response)
            await raw_response.write_eof()
            return raw_response
        finally:
            if request is not None:
                self._forget(request)

    def _forget(self, request: kmock.Request) -> None:
        """Drop an answered request from kmock's lists (they are scanned on every request)."""
        for requests in [self._requests, *(payload._requests for payload in self._payloads)]:
            for index in range(len(requests) - 1, -1, -1):
                if requests[index] is request:
                    del requests[index]
                    break
        if self.recent_requests.maxlen:
            self.recent_requests.append(request)

    @property
    def held_requests(self) -> int:
        """How many requests kmock holds now: the ones in flight (open watches included)."""
        return len(self._requests) + sum(len(payload._requests) for payload in self._payloads)

    async def _render_error(self, exc: Exception) -> aiohttp.web.StreamResponse:
        error = exc if isinstance(exc, ApiError) else _internal(exc)
        return aiohttp.web.json_response(error.status(), status=error.code)

    async def _stream_error(self, exc: Exception, raw_response: aiohttp.web.StreamResponse) -> None:
        error = exc if isinstance(exc, ApiError) else _internal(exc)
        line = aiohttp.web.json_response({"type": "ERROR", "object": error.status()}).body
        assert isinstance(line, bytes)
        await raw_response.write(line + b"\n")

    # -- discovery -------------------------------------------------------------------------

    async def _serve_unknown(self, request: kmock.Request) -> kmock.Payload:
        raise NotFound("the server could not find the requested resource")

    async def _serve_version(self, request: kmock.Request) -> kmock.Payload:
        payload = await super()._serve_version(request)
        assert request.resource is not None and isinstance(payload, dict)
        if request.resource.group == "":  # kmock says "/v1"; kubectl then finds no resources
            payload["groupVersion"] = request.resource.version
        for entry in payload["resources"]:
            if "/" in entry["name"]:  # kmock gives subresources their parent's short names
                entry.update(shortNames=[], categories=[])
        return payload

    # -- resources -------------------------------------------------------------------------

    def _kind_of(self, resource: kmock.resource | None) -> Kind:
        if resource is None or resource not in self.resources:
            raise NotFound("the server could not find the requested resource")
        info = self.resources[resource]
        assert resource.group is not None and resource.version and resource.plural
        return Kind(
            group=resource.group,
            version=resource.version,
            plural=resource.plural,
            kind=info.kind or resource.plural.capitalize(),
            namespaced=bool(info.namespaced),
            has_status="status" in info.subresources,
        )

    async def _respond(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        rv = self.store.rv
        answer = self._serve_resource(request)
        if isinstance(answer, tuple):
            status, body = answer
            if self.store.rv != rv:
                # A write woke the watches it concerns: let them send their events before this
                # answer goes out. An API server's watch cache delivers events independently of
                # the write's response; answering first would put the whole answer's cost
                # (encoding, sending) in front of every watcher.
                await asyncio.sleep(0)
            return aiohttp.web.json_response(body, status=status, dumps=_dumps)
        return await self._stream_watch(request, answer)

    def _serve_resource(self, request: kmock.Request) -> tuple[int, Obj] | AsyncIterator[list[Any]]:
        kind = self._kind_of(request.resource)
        if not kind.namespaced and request.namespace is not None:
            raise NotFound("the server could not find the requested resource")
        if request.subresource not in (None, "status"):
            raise NotFound(f"subresource {request.subresource!r} is not emulated")
        status_only = request.subresource == "status"
        namespace = request.namespace if kind.namespaced else None
        params = request.params
        selector = Selector.parse(
            labels=params.get("labelSelector"), fields=params.get("fieldSelector")
        )
        method, name = request.method.value, request.name

        if request.action == kmock.action.WATCH:
            if name is not None:
                selector = Selector.parse(
                    labels=params.get("labelSelector"), fields=f"metadata.name={name}"
                )
            return self._open_watch(request, kind, namespace, selector)
        if method == "GET" and name is not None:
            return 200, self.store.get(kind, namespace, name)
        if method == "GET":
            items, rv = self.store.list_objects(kind, namespace, selector)
            return 200, self._list(kind, items, rv)
        if method == "POST" and name is None and not status_only:
            body = self._body(request)
            return 201, self.store.create(
                kind, self._namespace_for_create(kind, namespace, body), body
            )
        if method == "PUT" and name is not None:
            body = self._body(request)
            if (body.get("metadata") or {}).get("name") not in (None, name):
                raise BadRequest("the name of the object does not match the name in the URL")
            return 200, self.store.modify(
                kind, namespace, name, lambda old: body, status_only=status_only
            )
        if method == "PATCH" and name is not None:
            return self._patch(request, kind, namespace, name, status_only=status_only)
        if method == "DELETE" and name is not None and not status_only:
            return 200, self.store.delete(kind, namespace, name)
        if method == "DELETE" and name is None:
            gone = self.store.delete_collection(kind, namespace, selector)
            return 200, self._list(kind, gone, self.store.rv)
        raise MethodNotAllowed(f"the server does not allow {method} on this resource")

    def _patch(
        self,
        request: kmock.Request,
        kind: Kind,
        namespace: str | None,
        name: str,
        *,
        status_only: bool,
    ) -> tuple[int, Obj]:
        content_type = request.headers.get("Content-Type", "")
        if request.data is None:
            self._body(request)  # raises the right error for an empty or unreadable body
        patch = request.data
        if content_type.startswith(_patching.APPLY):  # server-side apply creates, too
            try:
                self.store.get(kind, namespace, name)
            except NotFound:
                body = dict(patch, metadata=dict(patch.get("metadata") or {}, name=name))
                return 201, self.store.create(kind, namespace, body)
        return 200, self.store.modify(
            kind,
            namespace,
            name,
            lambda old: _patching.apply_patch(old, patch, content_type=content_type),
            status_only=status_only,
        )

    @staticmethod
    def _namespace_for_create(kind: Kind, namespace: str | None, body: Obj) -> str | None:
        if not kind.namespaced:
            return None
        in_body = (body.get("metadata") or {}).get("namespace")
        if namespace is not None and in_body not in (None, "", namespace):
            raise BadRequest(
                "the namespace of the provided object does not match the namespace"
                " sent on the request"
            )
        return namespace or in_body or "default"

    @staticmethod
    def _body(request: kmock.Request) -> Obj:
        content_type = request.headers.get("Content-Type", "")
        if "protobuf" in content_type:
            raise UnsupportedMediaType(
                "the emulator reads JSON and YAML bodies only, not protobuf; use kubectl 1.20"
                " (.tools/bin/kubectl) or ask for JSON"
            )
        if not isinstance(request.data, dict):
            raise BadRequest("the request body must be a JSON object")
        return request.data

    @staticmethod
    def _list(kind: Kind, items: list[Obj], rv: int) -> Obj:
        return {
            "apiVersion": kind.api_version,
            "kind": f"{kind.kind}List",
            "metadata": {"resourceVersion": str(rv)},
            "items": items,
        }

    # -- watching --------------------------------------------------------------------------

    def _open_watch(
        self, request: kmock.Request, kind: Kind, namespace: str | None, selector: Selector
    ) -> AsyncIterator[list[Any]]:
        raw_timeout = request.params.get("timeoutSeconds")
        try:
            timeout = float(raw_timeout) if raw_timeout else None
        except ValueError:
            raise BadRequest(f"invalid timeoutSeconds: {raw_timeout!r}") from None
        try:
            watch = self.store.watch(
                kind, namespace, selector, since=request.params.get("resourceVersion")
            )
        except Gone as exc:
            return _single_event({"type": "ERROR", "object": exc.status()})
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        return self._watch_events(request, watch, deadline)

    async def _stream_watch(
        self, request: kmock.Request, batches: AsyncIterator[list[Any]]
    ) -> aiohttp.web.StreamResponse:
        raw = request._raw_request
        assert raw is not None  # only artificial requests have none
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(raw)  # a watch is open even while nothing happens
        try:
            async for batch in batches:
                await response.write(b"".join(_dumps(event).encode() + b"\n" for event in batch))
            await response.write_eof()
        except ConnectionError:
            pass  # the client has gone
        finally:
            await _aclose(batches)
        return response

    async def _watch_events(
        self, request: kmock.Request, watch: Watch, deadline: float | None
    ) -> AsyncIterator[list[Any]]:
        """The watch's events, every one waiting at a time, until it ends or the client goes."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                raw = request._raw_request
                if raw is None or raw.transport is None or raw.transport.is_closing():
                    return  # the client has gone
                wait = WATCH_POLL_SECONDS
                if deadline is not None:
                    wait = min(wait, deadline - loop.time())
                    if wait <= 0:
                        return  # timeoutSeconds: the server ends the watch, the client re-watches
                if not await watch.wait(wait):
                    continue
                batch: list[Any] = []
                while watch.pending:
                    event = watch.pending.popleft()
                    if event is None:  # the server is stopping
                        if batch:
                            yield batch
                        return
                    batch.append(event)
                yield batch
        finally:
            self.store.unwatch(watch)


async def _single_event(event: dict[str, Any]) -> AsyncIterator[list[Any]]:
    yield [event]


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


async def _aclose(events: AsyncIterator[Any]) -> None:
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()


def _internal(exc: Exception) -> ApiError:
    error = ApiError(f"the emulator failed: {exc!r}")
    return error
