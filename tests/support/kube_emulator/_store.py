"""The emulator's objects, its resourceVersion counter, its event log and its live watches.

Called by the request handler (``_emulator``); every method is synchronous, so within one
asyncio loop each write is atomic: it bumps the global resourceVersion, stores a new snapshot
of the object (stored snapshots are never mutated, so responses and events can share them),
appends an event to a bounded log and hands it to every live watch that selects it.
A watch from resourceVersion N replays the logged events after N; one older than the log
gets ``410 Expired``, as from a real API server, and the client re-lists.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import datetime
import re
import secrets
import string
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ._errors import AlreadyExists, BadRequest, Conflict, Gone, Invalid, NotFound
from ._selectors import Selector

Obj = dict[str, Any]

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
BUILTIN_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


@dataclass(frozen=True, kw_only=True)
class Kind:
    """One served resource: where it lives in the API and what its objects are called."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    has_status: bool = False  # a status subresource: the main resource cannot change status

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def describe(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


@dataclass(frozen=True, kw_only=True)
class Event:
    """One change: its resourceVersion, the object after it and (for MODIFIED) before it."""

    rv: int
    type: str
    kind: Kind
    namespace: str | None
    obj: Obj
    old: Obj | None = None

    def as_seen(self, selector: Selector) -> dict[str, Any] | None:
        """The watch event a client with this selector sees, or None if it sees nothing."""
        now = selector.matches(self.obj)
        if self.type == "MODIFIED":
            before = self.old is not None and selector.matches(self.old)
            kind = {(True, True): "MODIFIED", (True, False): "DELETED", (False, True): "ADDED"}
            seen = kind.get((before, now))
            return None if seen is None else {"type": seen, "object": self.obj}
        return {"type": self.type, "object": self.obj} if now else None


@dataclass(eq=False, kw_only=True)
class Watch:
    """A live watch: the events it selects wait in ``pending``; None ends it.

    Not an ``asyncio.Queue`` read with ``wait_for``: that costs a task and several loop turns
    per event. ``put`` wakes the one reader (``_emulator``'s stream writer) directly, and the
    reader takes every event that is waiting at once.
    """

    kind: Kind
    namespace: str | None
    selector: Selector
    pending: collections.deque[dict[str, Any] | None] = field(default_factory=collections.deque)
    _waiter: asyncio.Future[None] | None = None

    def put(self, item: dict[str, Any] | None) -> None:
        self.pending.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def offer(self, event: Event) -> None:
        if event.kind != self.kind:
            return
        if self.namespace is not None and event.namespace != self.namespace:
            return
        seen = event.as_seen(self.selector)
        if seen is not None:
            self.put(seen)

    async def wait(self, seconds: float) -> bool:
        """Wait until something is pending, at most ``seconds``; whether something is."""
        if not self.pending:
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            timer = loop.call_later(seconds, _wake, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
        return bool(self.pending)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Store:
    """All objects of all resources, keyed by kind, then by (namespace, name)."""

    def __init__(self, *, log_size: int = 4096) -> None:
        self.rv = 0
        self._objects: dict[Kind, dict[tuple[str | None, str], Obj]] = collections.defaultdict(dict)
        self._log: collections.deque[Event] = collections.deque(maxlen=log_size)
        self._forgotten_rv = 0  # events up to this resourceVersion have left the log
        self._watches: set[Watch] = set()
        self._closed = False

    # -- reading ---------------------------------------------------------------------------

    def list_objects(
        self, kind: Kind, namespace: str | None, selector: Selector
    ) -> tuple[list[Obj], int]:
        items = [
            obj
            for (ns, _), obj in sorted(self._objects[kind].items(), key=lambda kv: kv[0][1])
            if (namespace is None or ns == namespace) and selector.matches(obj)
        ]
        return items, self.rv

    def get(self, kind: Kind, namespace: str | None, name: str) -> Obj:
        try:
            return self._objects[kind][namespace, name]
        except KeyError:
            raise NotFound(
                f'{kind.describe()} "{name}" not found',
                kind=kind.plural,
                name=name,
                group=kind.group,
            ) from None

    def count(self) -> int:
        return sum(len(objects) for objects in self._objects.values())

    # -- writing ---------------------------------------------------------------------------

    def create(self, kind: Kind, namespace: str | None, body: Obj) -> Obj:
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise BadRequest("metadata must be an object")
        if not meta.get("name") and meta.get("generateName"):
            alphabet = string.ascii_lowercase + string.digits
            meta["name"] = meta["generateName"] + "".join(
                secrets.choice(alphabet) for _ in range(5)
            )
        self._validate(kind, obj)
        name: str = meta["name"]
        if (namespace, name) in self._objects[kind]:
            raise AlreadyExists(
                f'{kind.describe()} "{name}" already exists',
                kind=kind.plural,
                name=name,
                group=kind.group,
            )
        obj["apiVersion"] = kind.api_version
        obj["kind"] = kind.kind
        self.rv += 1
        meta.pop("resourceVersion", None)
        meta.pop("deletionTimestamp", None)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now(), resourceVersion=str(self.rv))
        if namespace is not None:
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if "spec" in obj:
            meta["generation"] = 1
        if kind.kind == "Namespace" and not kind.group:
            obj.setdefault("status", {"phase": "Active"})
        self._objects[kind][namespace, name] = obj
        self._emit(Event(rv=self.rv, type="ADDED", kind=kind, namespace=namespace, obj=obj))
        return obj

    def modify(
        self,
        kind: Kind,
        namespace: str | None,
        name: str,
        change: Callable[[Obj], Obj],
        *,
        status_only: bool = False,
    ) -> Obj:
        """Replace an object by ``change(old)``; a stale resourceVersion in it is a Conflict."""
        old = self.get(kind, namespace, name)
        new = change(old)
        if not isinstance(new.get("metadata"), dict):
            raise BadRequest("metadata must be an object")
        wanted_rv = new["metadata"].get("resourceVersion")
        if wanted_rv and wanted_rv != old["metadata"]["resourceVersion"]:
            raise Conflict(
                f'Operation cannot be fulfilled on {kind.describe()} "{name}": the object has'
                " been modified; please apply your changes to the latest version and try again",
                kind=kind.plural,
                name=name,
                group=kind.group,
            )
        if status_only:  # the status subresource changes the status and nothing else
            status = new.get("status")
            new = copy.deepcopy(old)
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
        elif kind.has_status:  # the main resource does not change the status
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        self._validate(kind, new)
        meta = new["metadata"]
        for key in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp"):
            if key in old["metadata"]:
                meta[key] = old["metadata"][key]
            else:
                meta.pop(key, None)
        meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        new["apiVersion"] = kind.api_version
        new["kind"] = kind.kind
        if "generation" in old["metadata"] and new.get("spec") != old.get("spec"):
            meta["generation"] = old["metadata"]["generation"] + 1
        if new == old:
            return old  # a no-op write changes nothing and tells no watcher, as in Kubernetes
        self.rv += 1
        meta["resourceVersion"] = str(self.rv)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            del self._objects[kind][namespace, name]
            self._emit(Event(rv=self.rv, type="DELETED", kind=kind, namespace=namespace, obj=new))
            return new
        self._objects[kind][namespace, name] = new
        self._emit(
            Event(rv=self.rv, type="MODIFIED", kind=kind, namespace=namespace, obj=new, old=old)
        )
        return new

    def delete(self, kind: Kind, namespace: str | None, name: str) -> Obj:
        old = self.get(kind, namespace, name)
        meta = old["metadata"]
        if meta.get("deletionTimestamp"):
            return old
        if meta.get("finalizers"):  # marked for deletion; gone when the finalizers are
            new = copy.deepcopy(old)
            new["metadata"]["deletionTimestamp"] = _now()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            self.rv += 1
            new["metadata"]["resourceVersion"] = str(self.rv)
            self._objects[kind][namespace, name] = new
            self._emit(
                Event(rv=self.rv, type="MODIFIED", kind=kind, namespace=namespace, obj=new, old=old)
            )
            return new
        if kind.plural == "namespaces" and not kind.group:
            self._delete_namespace_contents(name)
        self.rv += 1
        gone = copy.deepcopy(old)
        gone["metadata"]["resourceVersion"] = str(self.rv)
        del self._objects[kind][namespace, name]
        self._emit(Event(rv=self.rv, type="DELETED", kind=kind, namespace=namespace, obj=gone))
        return gone

    def delete_collection(self, kind: Kind, namespace: str | None, selector: Selector) -> list[Obj]:
        items, _ = self.list_objects(kind, namespace, selector)
        return [
            self.delete(kind, item["metadata"].get("namespace"), item["metadata"]["name"])
            for item in items
        ]

    def _delete_namespace_contents(self, namespace: str) -> None:
        for kind, objects in list(self._objects.items()):
            for ns, name in [key for key in objects if key[0] == namespace]:
                self.rv += 1
                gone = copy.deepcopy(objects.pop((ns, name)))
                gone["metadata"]["resourceVersion"] = str(self.rv)
                self._emit(Event(rv=self.rv, type="DELETED", kind=kind, namespace=ns, obj=gone))

    def _validate(self, kind: Kind, obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        name = meta.get("name")
        if not name:
            raise Invalid(
                f"{kind.kind} is invalid: metadata.name: Required value: name or"
                " generateName is required",
                kind=kind.kind,
            )
        if not isinstance(name, str) or len(name) > 253 or not _NAME.match(name):
            raise Invalid(
                f'{kind.kind} "{name}" is invalid: metadata.name: Invalid value:'
                " a lowercase RFC 1123 subdomain must consist of lower case"
                " alphanumeric characters, '-' or '.'",
                kind=kind.kind,
                name=str(name),
            )
        for key, value in (meta.get("labels") or {}).items():
            if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
                raise Invalid(
                    f'{kind.kind} "{name}" is invalid: metadata.labels: Invalid value:'
                    f" {value!r} for label {key!r}",
                    kind=kind.kind,
                    name=name,
                )
        for section in ("data", "binaryData") if kind.kind in ("ConfigMap", "Secret") else ():
            values = obj.get(section) or {}
            if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
                raise Invalid(
                    f'{kind.kind} "{name}" is invalid: {section}: values must be strings',
                    kind=kind.kind,
                    name=name,
                )

    # -- watching --------------------------------------------------------------------------

    def watch(
        self, kind: Kind, namespace: str | None, selector: Selector, *, since: str | None
    ) -> Watch:
        """Start a watch: from ``since`` (replayed from the log) or, if none, from now.

        Without a resourceVersion (or with "0") the watch starts with an ADDED event per
        existing object, as in Kubernetes.
        """
        watch = Watch(kind=kind, namespace=namespace, selector=selector)
        if self._closed:
            watch.put(None)
            return watch
        if not since or since == "0":
            items, _ = self.list_objects(kind, namespace, selector)
            for obj in items:
                watch.put({"type": "ADDED", "object": obj})
        else:
            try:
                start = int(since)
            except ValueError:
                raise BadRequest(f"invalid resourceVersion: {since!r}") from None
            if start < self._forgotten_rv:
                raise Gone(f"too old resource version: {start} ({self._forgotten_rv + 1})")
            for event in self._log:
                if event.rv > start:
                    watch.offer(event)
        self._watches.add(watch)
        return watch

    def unwatch(self, watch: Watch) -> None:
        self._watches.discard(watch)

    def close(self) -> None:
        """End every live watch (the server is stopping) and refuse new ones."""
        self._closed = True
        for watch in self._watches:
            watch.put(None)
        self._watches.clear()

    def _emit(self, event: Event) -> None:
        if self._log.maxlen is not None and len(self._log) == self._log.maxlen:
            self._forgotten_rv = self._log[0].rv
        self._log.append(event)
        for watch in self._watches:
            watch.offer(event)

    def __iter__(self) -> Iterator[tuple[Kind, Obj]]:
        for kind, objects in self._objects.items():
            for obj in objects.values():
                yield kind, obj
