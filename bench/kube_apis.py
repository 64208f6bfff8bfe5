"""The API servers ``bench/e2e_rollout.py`` measures on, and the two clients that time them.

- :class:`Emulator`: ``kube_emulator`` in a child process (plain HTTP, no authentication), a
  fresh one per pod count, the ``default`` namespace, the operator on its kubeconfig.
- :class:`RealApi`: etcd and kube-apiserver (``kube_control_plane.ControlPlane``, HTTPS, RBAC,
  audit logging off: a cost a cluster may or may not have), the chart installed once with helm
  (webhook off), one namespace per pod count, and the operator as the chart's ServiceAccount
  (TokenRequest token in its kubeconfig), as in ``tests/e2e/conftest.py``.

Both give a :class:`Target` per pod count: an admin :class:`hotconf_e2e.Api`, a factory of
kept-alive connections as the admin (``http.client.HTTPConnection``, or ``HTTPSConnection``
with the CA and the admin client certificate), the operator's kubeconfig, and the pids of the
server's processes (their CPU is reported per round).

:class:`Writer` PATCHes over one kept-alive connection. :class:`RawWatch` is the floor: a watch
of one ConfigMap (``?watch=true&fieldSelector=metadata.name=NAME&resourceVersion=RV``) on a
connection of its own, read by a thread that notes ``time.time()`` as soon as the line of each
MODIFIED event is read, by the value of its ``data.value``.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from hotconf_e2e import Api
from hotconf_e2e.chart import ChartRelease, install_chart
from kube_control_plane import AdminClient, ControlPlane
from kube_emulator._process import EmulatorProcess

Connect = Callable[[], http.client.HTTPConnection]


@dataclass
class Target:
    """One API server as one pod count's run sees it."""

    api: Api  # the admin, in ``api.namespace``
    connect: Connect  # a new connection as the admin (HTTP or HTTPS)
    operator_kubeconfig: Path
    pids: dict[str, list[int]]  # the server's processes by kind, for CPU per round

    @property
    def namespace(self) -> str:
        return self.api.namespace


def child_pids(comm: str) -> list[int]:
    """Pids of this process's children whose command name is ``comm`` (``/proc/*/stat``)."""
    found = []
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.find("(") + 1 : stat.rfind(")")]
        ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
        if ppid == me and name == comm:
            found.append(int(entry.name))
    return found


class Emulator:
    """``kube_emulator``: a fresh process for each :meth:`target`."""

    label = "emulator (kube_emulator 0.8 on kmock, plain HTTP, no authentication)"

    def __init__(self, work: Path) -> None:
        self.work = work

    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    @contextlib.contextmanager
    def target(self, tag: str) -> Iterator[Target]:
        (self.work / f"emu-{tag}").mkdir(parents=True)
        with EmulatorProcess(workdir=self.work / f"emu-{tag}") as emu:
            host, port = "127.0.0.1", emu.port

            def connect() -> http.client.HTTPConnection:
                return http.client.HTTPConnection(host, port, timeout=10)

            yield Target(
                api=Api(AdminClient(emu.url), "default"),
                connect=connect,
                operator_kubeconfig=emu.kubeconfig,
                pids={"emulator": [emu.pid]},
            )


class RealApi:
    """etcd + kube-apiserver (audit off) and the chart, started once; a namespace per target."""

    label = "real API server (kube-apiserver + etcd from .tools/bin, HTTPS, RBAC, no audit log)"

    def __init__(self, work: Path) -> None:
        self.work = work
        self.cp = ControlPlane(work / "control-plane", audit=False)
        self.release: ChartRelease | None = None

    def __enter__(self) -> RealApi:
        self.cp.__enter__()
        try:
            self.release = install_chart(self.cp, values={"webhook.enabled": "false"})
        except BaseException:
            self.cp.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.cp.stop()

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.cp.pki.ca_cert))
        ctx.load_cert_chain(str(self.cp.pki.admin_cert), str(self.cp.pki.admin_key))
        return ctx

    @contextlib.contextmanager
    def target(self, tag: str) -> Iterator[Target]:
        assert self.release is not None
        namespace = self.cp.create_namespace(prefix=f"bench-{tag}")
        ctx = self.ssl_context()
        port = self.cp.port

        def connect() -> http.client.HTTPConnection:
            return http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ctx)

        try:
            yield Target(
                api=Api(self.cp.admin, namespace),
                connect=connect,
                operator_kubeconfig=self.release.operator_kubeconfig(
                    self.work / f"operator-{namespace}.kubeconfig", namespace=namespace
                ),
                pids={"apiserver": child_pids("kube-apiserver"), "etcd": child_pids("etcd")},
            )
        finally:
            self.cp.delete_namespace(namespace)


class Writer:
    """PATCHes ConfigMaps over one kept-alive connection (reopened if the server closed it)."""

    def __init__(self, connect: Connect) -> None:
        self.connect = connect
        self.conn: http.client.HTTPConnection | None = None

    def patch_cm(self, namespace: str, name: str, patch: dict[str, object]) -> None:
        body = json.dumps(patch).encode()
        path = f"/api/v1/namespaces/{namespace}/configmaps/{name}"
        headers = {"Content-Type": "application/merge-patch+json", "Accept": "application/json"}
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = self.connect()
            try:
                self.conn.request("PATCH", path, body, headers)
                resp = self.conn.getresponse()
                raw = resp.read()
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
                continue
            if resp.status != 200:
                raise RuntimeError(f"PATCH {path}: HTTP {resp.status}: {raw[:200]!r}")
            return

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


class RawWatch:
    """One watch of one ConfigMap on its own connection; a thread reads it and notes, for each
    ``data.value`` first seen in a MODIFIED event, ``time.time()`` right after its line was
    read (the line is parsed after the clock is read)."""

    def __init__(self, connect: Connect, namespace: str, name: str, resource_version: str) -> None:
        selector = quote(f"metadata.name={name}", safe="")
        self.path = (
            f"/api/v1/namespaces/{namespace}/configmaps?watch=true&fieldSelector={selector}"
            f"&resourceVersion={resource_version}&timeoutSeconds=3600"
        )
        self.conn = connect()
        self.conn.timeout = None  # a watch waits as long as it must
        self.seen: dict[str, float] = {}
        self.error = ""
        self.closing = False
        self.cond = threading.Condition()
        self.conn.request("GET", self.path, headers={"Accept": "application/json"})
        self.sock = self.conn.sock
        self.resp = self.conn.getresponse()
        if self.resp.status != 200:
            raise RuntimeError(f"watch {name}: HTTP {self.resp.status}: {self.resp.read(200)!r}")
        self.thread = threading.Thread(target=self._read, name=f"watch-{name}", daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            while True:
                line = self.resp.readline()
                at = time.time()
                if not line:
                    self._fail("watch ended")
                    return
                if not line.strip():
                    continue
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    self._fail(f"watch error: {event.get('object')}")
                    return
                if event.get("type") != "MODIFIED":
                    continue
                value = str((event["object"].get("data") or {}).get("value"))
                with self.cond:
                    self.seen.setdefault(value, at)
                    self.cond.notify_all()
        except (OSError, ValueError, http.client.HTTPException) as exc:
            self._fail(f"watch failed: {exc!r}")

    def _fail(self, why: str) -> None:
        with self.cond:
            if not self.closing:
                self.error = why
            self.cond.notify_all()

    def wait(self, value: str, timeout: float = 30.0) -> float:
        """The time the MODIFIED event carrying ``value`` was read."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while value not in self.seen:
                if self.error:
                    raise RuntimeError(self.error)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no MODIFIED event with value {value} in {timeout}s")
                self.cond.wait(left)
            return self.seen[value]

    def close(self) -> None:
        with self.cond:
            self.closing = True
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
        self.thread.join(5)
        self.conn.close()
