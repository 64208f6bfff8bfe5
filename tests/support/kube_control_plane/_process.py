"""A real Kubernetes control plane for tests: etcd and kube-apiserver as child processes.

Both binaries are built from their Go modules by ``scripts/build-control-plane`` into
``.tools/bin``. :class:`ControlPlane` starts them on loopback with a temporary data directory:
etcd (plain HTTP on 127.0.0.1, no fsync: test data need not survive a power cut) and
kube-apiserver (HTTPS with the session's own CA, client-certificate and service-account token
authentication, RBAC authorization, the default admission plugins plus the mutating and
validating webhooks, service-account signing keys for the TokenRequest API). It waits for
``/readyz``, writes an admin kubeconfig, and stops both cleanly; either can be restarted on the
same port while the other keeps running (the outage tests). Children get SIGKILL if the test
process dies, so nothing leaks even then.

There is no kube-controller-manager and no kubelet: a namespace gets its ``default``
ServiceAccount from :meth:`ControlPlane.create_namespace`, and the end-to-end harness plays the
kubelet for pods (``hotconf_e2e``).
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from ._client import AdminClient, ApiError
from ._pki import Pki, make_pki

__all__ = ["ControlPlane", "ControlPlaneError", "binaries", "missing_binaries"]

REPO = Path(__file__).resolve().parents[3]
TOOLS_BIN = REPO / ".tools" / "bin"
#: The issuer of service-account tokens (what a cluster's kube-apiserver usually says).
ISSUER = "https://kubernetes.default.svc.cluster.local"


class ControlPlaneError(Exception):
    """A control-plane process did not start, or stopped when it should not have."""


def binaries() -> dict[str, Path]:
    return {name: TOOLS_BIN / name for name in ("etcd", "kube-apiserver")}


def missing_binaries() -> list[Path]:
    return [path for path in binaries().values() if not os.access(path, os.X_OK)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class _Child:
    """One long-running binary with its log file."""

    def __init__(self, name: str, args: list[str], log: Path) -> None:
        self.name = name
        self.args = args
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.args,
                stdout=out,
                stderr=out,
                preexec_fn=_die_with_parent,
                # the session's, even when a test restarts it (tests/support/leak_checks.py)
                env={**os.environ, "HOTCONF_TEST_SHARED_CHILD": "1"},
            )

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        if not self.running():
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


class ControlPlane:
    """etcd + kube-apiserver on loopback, rooted at ``workdir``. Use as a context manager."""

    def __init__(self, workdir: Path, *, start_timeout: float = 90.0, audit: bool = True) -> None:
        """``audit``: kube-apiserver writes an audit log (``audit.log``, every request at the
        Metadata level): :meth:`audit_events` shows what an identity asked and was answered."""
        missing = missing_binaries()
        if missing:
            raise ControlPlaneError(
                f"missing {', '.join(map(str, missing))}: run scripts/build-control-plane"
            )
        self.workdir = workdir
        self.start_timeout = start_timeout
        workdir.mkdir(parents=True, exist_ok=True)
        self.pki: Pki = make_pki(workdir / "pki")
        self.etcd_port = _free_port()
        self.etcd_peer_port = _free_port()
        self.port = _free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.kubeconfig = workdir / "admin.kubeconfig"
        self.audit_log = workdir / "audit.log"
        audit_flags: list[str] = []
        if audit:
            policy = workdir / "audit-policy.json"
            policy.write_text(json.dumps({
                "apiVersion": "audit.k8s.io/v1", "kind": "Policy",
                "omitStages": ["RequestReceived"], "rules": [{"level": "Metadata"}],
            }))  # fmt: skip
            audit_flags = ["--audit-policy-file", str(policy), "--audit-log-path",
                           str(self.audit_log), "--audit-log-format", "json"]  # fmt: skip
        bins = binaries()
        self._etcd = _Child(
            "etcd",
            [
                str(bins["etcd"]),
                "--name",
                "test",
                "--data-dir",
                str(workdir / "etcd"),
                "--listen-client-urls",
                f"http://127.0.0.1:{self.etcd_port}",
                "--advertise-client-urls",
                f"http://127.0.0.1:{self.etcd_port}",
                "--listen-peer-urls",
                f"http://127.0.0.1:{self.etcd_peer_port}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{self.etcd_peer_port}",
                "--initial-cluster",
                f"test=http://127.0.0.1:{self.etcd_peer_port}",
                "--listen-metrics-urls",
                "",
                "--unsafe-no-fsync",
                "--log-level",
                "warn",
            ],
            workdir / "etcd.log",
        )
        self._apiserver = _Child(
            "kube-apiserver",
            [
                str(bins["kube-apiserver"]),
                "--etcd-servers",
                f"http://127.0.0.1:{self.etcd_port}",
                "--bind-address",
                "127.0.0.1",
                "--advertise-address",
                "127.0.0.1",
                "--secure-port",
                str(self.port),
                "--cert-dir",
                str(workdir / "apiserver-certs"),
                "--tls-cert-file",
                str(self.pki.serving_cert),
                "--tls-private-key-file",
                str(self.pki.serving_key),
                "--client-ca-file",
                str(self.pki.ca_cert),
                "--authorization-mode",
                "RBAC",
                "--enable-admission-plugins",
                "MutatingAdmissionWebhook,ValidatingAdmissionWebhook",
                "--service-account-issuer",
                ISSUER,
                "--service-account-key-file",
                str(self.pki.service_account_pub),
                "--service-account-signing-key-file",
                str(self.pki.service_account_key),
                "--service-cluster-ip-range",
                "10.0.0.0/24",
                # The kubernetes Service's endpoints would be 127.0.0.1, which the API refuses.
                "--endpoint-reconciler-type",
                "none",
                "--allow-privileged",
                "--profiling=false",
                "--v",
                "1",
                *audit_flags,
            ],
            workdir / "kube-apiserver.log",
        )
        self.admin = AdminClient(
            self.url,
            ca_cert=self.pki.ca_cert,
            client_cert=self.pki.admin_cert,
            client_key=self.pki.admin_key,
        )

    # -- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> ControlPlane:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        self.start_etcd()
        self.start_apiserver()
        self.write_kubeconfig(self.kubeconfig)

    def stop(self) -> None:
        self._apiserver.stop()
        self._etcd.stop()

    def start_etcd(self) -> None:
        self._etcd.start()
        self._wait("etcd", self._etcd, lambda: self._etcd_healthy())

    def stop_etcd(self) -> None:
        self._etcd.stop()

    def start_apiserver(self) -> None:
        self._apiserver.start()
        self._wait("kube-apiserver /readyz", self._apiserver, lambda: self.admin.ok("/readyz"))

    def stop_apiserver(self) -> None:
        self._apiserver.stop()

    @contextlib.contextmanager
    def apiserver_down(self) -> Iterator[None]:
        """kube-apiserver stopped for the block (etcd keeps the data), then back and ready."""
        self.stop_apiserver()
        try:
            yield
        finally:
            self.start_apiserver()

    def _etcd_healthy(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.etcd_port}/health"
            with urllib.request.urlopen(url, timeout=1) as resp:
                return bool(json.loads(resp.read()).get("health") == "true")
        except OSError:
            return False

    def _wait(self, what: str, child: _Child, ready: Any) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if not child.running():
                raise ControlPlaneError(f"{child.name} exited while starting:\n{child.tail()}")
            if ready():
                return
            time.sleep(0.1)
        raise ControlPlaneError(f"{what} not ready in {self.start_timeout}s:\n{child.tail()}")

    def audit_events(self, username: str) -> list[dict[str, Any]]:
        """Every request ``username`` made (one event per request, at ResponseComplete or
        Panic), oldest first: ``verb``, ``objectRef``, ``responseStatus.code``..."""
        if not self.audit_log.exists():
            return []
        events = []
        for line in self.audit_log.read_text(errors="replace").splitlines():
            if f'"{username}"' not in line:
                continue
            event = json.loads(line)
            if event.get("user", {}).get("username") == username:
                events.append(event)
        return events

    def logs(self, which: str = "kube-apiserver") -> str:
        return (self.workdir / f"{which}.log").read_text(errors="replace")

    # -- kubeconfigs and identities -------------------------------------------------------------

    def kubeconfig_text(
        self, *, namespace: str = "default", user: Mapping[str, Any] | None = None
    ) -> str:
        """A kubeconfig for this API server: the admin certificate unless ``user`` is given."""

        def b64(path: Path) -> str:
            return base64.b64encode(path.read_bytes()).decode()

        user = (
            dict(user)
            if user is not None
            else {
                "client-certificate-data": b64(self.pki.admin_cert),
                "client-key-data": b64(self.pki.admin_key),
            }
        )
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "test",
                    "cluster": {
                        "server": self.url,
                        "certificate-authority-data": b64(self.pki.ca_cert),
                    },
                }
            ],
            "users": [{"name": "test", "user": user}],
            "contexts": [
                {
                    "name": "test",
                    "context": {"cluster": "test", "user": "test", "namespace": namespace},
                }
            ],
            "current-context": "test",
        }
        return json.dumps(config, indent=2)

    def write_kubeconfig(
        self, path: Path, *, namespace: str = "default", user: Mapping[str, Any] | None = None
    ) -> Path:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.kubeconfig_text(namespace=namespace, user=user))
        tmp.chmod(0o600)
        tmp.replace(path)
        return path

    def create_token(
        self,
        namespace: str,
        service_account: str,
        *,
        seconds: int = 3600,
        bound_secret: str | None = None,
    ) -> str:
        """A token of the TokenRequest API. Bound to a Secret, it stops working once the Secret
        is deleted: that is how the tests make a token expire before the 10-minute minimum."""
        spec: dict[str, Any] = {"expirationSeconds": seconds}
        if bound_secret is not None:
            secret = self.admin.request(
                "GET", f"/api/v1/namespaces/{namespace}/secrets/{bound_secret}"
            )
            spec["boundObjectRef"] = {
                "apiVersion": "v1",
                "kind": "Secret",
                "name": bound_secret,
                "uid": secret["metadata"]["uid"],
            }
        answer = self.admin.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
        )
        return str(answer["status"]["token"])

    def client(self, token: str) -> AdminClient:
        return AdminClient(self.url, ca_cert=self.pki.ca_cert, token=token)

    # -- namespaces -----------------------------------------------------------------------------

    def create_namespace(self, name: str | None = None, *, prefix: str = "t") -> str:
        """A namespace with its ``default`` ServiceAccount (no controller-manager makes it)."""
        name = name or f"{prefix[:50].rstrip('-')}-{uuid.uuid4().hex[:6]}"
        self.admin.request(
            "POST",
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
        )
        self.admin.request(
            "POST",
            f"/api/v1/namespaces/{name}/serviceaccounts",
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}},
        )
        return name

    def delete_namespace(self, name: str) -> None:
        """Delete what hotconf's tests make in ``name``, then the namespace itself. Without a
        namespace controller the namespace stays Terminating, but it is empty of hotconf objects,
        so no later operator sees them."""
        for resource in ("pods", "configmaps", "secrets"):
            with contextlib.suppress(ApiError):
                self.admin.request(
                    "DELETE", f"/api/v1/namespaces/{name}/{resource}?gracePeriodSeconds=0"
                )
        with contextlib.suppress(ApiError):
            self.admin.request("DELETE", f"/api/v1/namespaces/{name}")
