"""End-to-end harness: the emulated API, the operator, and pods made of real processes.

Used by ``tests/e2e`` and ``bench/e2e_rollout.py``. A :class:`Pod` is a Pod object in the
emulator (Running, ``status.podIP`` = a distinct 127.0.0.x address, annotated
``hotconf.dev/configmaps`` and ``hotconf.dev/port``), a real ``hotconf-sidecar`` listening on
that address, and a worker process (``hotconf_e2e.worker``, built on ``hotconf.run``) connected
to the sidecar's socket. :class:`OperatorProcess` runs the real ``hotconf-operator`` console
script with ``KUBECONFIG`` pointing at the emulator. Everything is stopped by its owner.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from kube_control_plane import AdminClient

BIN = Path(sys.executable).parent
SUPPORT = Path(__file__).resolve().parent.parent
REPO = SUPPORT.parent.parent
KUBECTL = REPO / ".tools" / "bin" / "kubectl-1.33"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_for(
    what: str, check: Callable[[], Any], timeout: float = 20.0, every: float = 0.02
) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SUPPORT), *filter(None, [env.get("PYTHONPATH")])])
    return env


class Api:
    """The test's view of the API server: JSON over HTTPS as the admin, in one namespace.

    Methods take ``namespace=None`` for the test's own namespace (``self.namespace``)."""

    def __init__(self, client: AdminClient, namespace: str) -> None:
        self.client = client
        self.url = client.url
        self.namespace = namespace

    def request(
        self, method: str, path: str, body: Any = None, ctype: str = "application/json"
    ) -> Any:
        return self.client.request(method, path, body, content_type=ctype)

    def _ns(self, namespace: str | None) -> str:
        return namespace or self.namespace

    def get_cm(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "GET", f"/api/v1/namespaces/{self._ns(namespace)}/configmaps/{name}"
        )
        return result

    def patch_cm(self, name: str, patch: Mapping[str, Any], namespace: str | None = None) -> None:
        self.request(
            "PATCH",
            f"/api/v1/namespaces/{self._ns(namespace)}/configmaps/{name}",
            patch,
            "application/merge-patch+json",
        )

    def status_of(self, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        annotations = self.get_cm(name, namespace)["metadata"].get("annotations") or {}
        raw = annotations.get("hotconf.dev/status")
        return json.loads(raw) if raw else None

    def events(self, namespace: str | None = None) -> list[dict[str, Any]]:
        path = f"/api/v1/namespaces/{self._ns(namespace)}/events"
        return list(self.request("GET", path)["items"])

    def create_pod(self, body: Mapping[str, Any], namespace: str | None = None) -> dict[str, Any]:
        path = f"/api/v1/namespaces/{self._ns(namespace)}/pods"
        result: dict[str, Any] = self.request("POST", path, body)
        return result

    def set_pod_status(
        self, name: str, status: Mapping[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        """Write a pod's status as the kubelet would (there is none here)."""
        result: dict[str, Any] = self.request(
            "PATCH",
            f"/api/v1/namespaces/{self._ns(namespace)}/pods/{name}/status",
            {"status": dict(status)},
            "application/merge-patch+json",
        )
        return result

    def delete_pod(self, name: str, namespace: str | None = None) -> None:
        self.request(
            "DELETE", f"/api/v1/namespaces/{self._ns(namespace)}/pods/{name}?gracePeriodSeconds=0"
        )


def running_status(ip: str) -> dict[str, Any]:
    """The status a kubelet writes for a started, ready pod on ``ip``."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {
        "phase": "Running",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "hostIP": "127.0.0.1",
        "startTime": now,
        "conditions": [
            {"type": kind, "status": "True", "lastTransitionTime": now}
            for kind in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
        ],
    }


def make_key(path: Path) -> str:
    """Write a fresh Ed25519 private key to ``path``; return the public key PEM."""
    key = Ed25519PrivateKey.generate()
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def read_reports(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    # A worker may be writing its next line right now: only whole lines count.
    lines = text[: text.rfind("\n") + 1].splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _stop(proc: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Pod:
    """One emulated pod: a Pod object, a real sidecar on its own 127.0.0.x, one worker."""

    def __init__(
        self,
        *,
        api: Api,
        workdir: Path,
        name: str,
        ip: str,
        configmap: str,
        public_key_pem: str,
        namespace: str | None = None,
        worker: bool = True,
        sidecar_log_level: str = "WARNING",
        shared_report: Path | None = None,
        labels: Mapping[str, str] | None = None,
        advertised_port: int | None = None,
        worker_mode: str = "thread",
    ) -> None:
        """``advertised_port``: the port the Pod's annotation names, when not the sidecar's own
        (a proxy in front of it)."""
        self.api = api
        self.advertised_port = advertised_port
        #: The operator watches only pods labelled hotconf.dev/inject=true (its default selector).
        self.labels = dict({"hotconf.dev/inject": "true"} if labels is None else labels)
        self.shared_report = shared_report
        self.worker_mode = worker_mode
        self.sidecar_log_level = sidecar_log_level
        self.name = name
        self.ip = ip
        self.namespace = namespace or api.namespace
        self.configmap = configmap
        self.uid = str(uuid.uuid4())
        self.port = free_port(ip)
        self.dir = workdir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.socket = self.dir / "hotconf.sock"
        self.report = self.dir / "report.jsonl"
        self.public_key_pem = public_key_pem
        self.with_worker = worker
        self.sidecar: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None

    def start_sidecar(self) -> None:
        env = {
            **_env(),
            "HOTCONF_POD_NAMESPACE": self.namespace,
            "HOTCONF_POD_NAME": self.name,
            "HOTCONF_POD_UID": self.uid,
            "HOTCONF_OPERATOR_PUBLIC_KEY": self.public_key_pem,
            "HOTCONF_ACK_TIMEOUT": "3",
            "HOTCONF_LOG_LEVEL": self.sidecar_log_level,
        }
        args = [
            str(BIN / "hotconf-sidecar"),
            "--listen", f"{self.ip}:{self.port}",
            "--socket", str(self.socket),
            "--state-dir", str(self.dir / "state"),
        ]  # fmt: skip
        with (self.dir / "sidecar.log").open("ab") as log:
            self.sidecar = subprocess.Popen(args, env=env, stdout=log, stderr=log)

    def wait_sidecar(self) -> None:
        def ready() -> bool:
            assert self.sidecar is not None
            if self.sidecar.poll() is not None:
                raise AssertionError(f"sidecar {self.name} exited: {self.logs('sidecar')}")
            try:
                with urllib.request.urlopen(f"http://{self.ip}:{self.port}/readyz", timeout=1) as r:
                    return bool(r.status == 200)
            except OSError:
                return False

        wait_for(f"sidecar {self.name} ready", ready)

    def start_worker(self) -> None:
        env = {**_env(), "HOTCONF_NAMESPACE": self.namespace}
        args = [
            sys.executable, "-m", "hotconf_e2e.worker",
            "--socket", str(self.socket),
            "--configmap", self.configmap,
            "--report", str(self.report),
            "--pod", self.name,
        ]  # fmt: skip
        if self.shared_report is not None:
            args += ["--shared-report", str(self.shared_report)]
        if self.worker_mode != "thread":
            args += ["--mode", self.worker_mode]
        with (self.dir / "worker.log").open("ab") as log:
            self.worker = subprocess.Popen(args, env=env, stdout=log, stderr=log)

    def create_object(self, *, ready: bool = True) -> None:
        """Create the Pod object, then write its status as a kubelet would: Running,
        ``status.podIP`` = this pod's 127.0.0.x, and Ready unless ``ready`` is False (the
        containers are starting: :meth:`set_ready` later)."""
        got = self.api.create_pod(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": self.name,
                    "namespace": self.namespace,
                    "labels": self.labels,
                    "annotations": {
                        "hotconf.dev/configmaps": self.configmap,
                        "hotconf.dev/port": str(self.advertised_port or self.port),
                    },
                },
                "spec": {
                    "containers": [{"name": "app", "image": "example/app"}],
                    "automountServiceAccountToken": False,
                },
            },
            self.namespace,
        )
        self.uid_in_api = got["metadata"]["uid"]
        status = running_status(self.ip)
        if not ready:
            for condition in status["conditions"]:
                if condition["type"] in ("Ready", "ContainersReady"):
                    condition["status"] = "False"
        self.api.set_pod_status(self.name, status, self.namespace)

    def set_ready(self) -> None:
        """Once the worker is connected to its sidecar (when there is one), mark the pod Ready,
        as a kubelet does when every container is: the operator then asks the sidecar what its
        clients run. Before that a push is only held, and the operator knows no more of it
        until a sweep; a test that counts applied pods or names what a pod runs must not race
        the worker's start."""
        if self.with_worker:
            self.wait_worker()
        self.api.set_pod_status(self.name, running_status(self.ip), self.namespace)

    def launch(self) -> Pod:
        """Create the Pod object (to learn its uid), not Ready yet, then start sidecar and
        worker (:meth:`set_ready` next)."""
        self.create_object(ready=False)
        self.uid = self.uid_in_api
        self.start_sidecar()
        self.wait_sidecar()
        if self.with_worker:
            self.start_worker()
        return self

    def start(self) -> Pod:
        """:meth:`launch`, then :meth:`set_ready`."""
        self.launch()
        self.set_ready()
        return self

    def wait_worker(self) -> None:
        """Until the worker is connected to the sidecar's relay and has answered what the
        sidecar holds: a push before that is only held (and counted so), and the operator
        learns what the pod runs only from an answer it sees, which a test that counts applied
        pods or names what a pod runs must not race."""

        def settled() -> bool:
            assert self.worker is not None
            if self.worker.poll() is not None:
                raise AssertionError(f"worker {self.name} exited: {self.logs('worker')}")
            if (sample(self.metrics(), "hotconf_sidecar_clients_connected") or 0) < 1:
                return False
            return all(
                any(c["result"] in ("ack", "nack") for c in held["clients"])
                for held in self.state().get("configmaps", [])
            )

        wait_for(f"worker {self.name} connected and answering", settled)

    def reports(self) -> list[dict[str, Any]]:
        return read_reports(self.report)

    def current(self) -> dict[str, Any]:
        """The worker's last report ({} before its first config)."""
        reports = self.reports()
        return reports[-1] if reports else {}

    def logs(self, which: str) -> str:
        path = self.dir / f"{which}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def state(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://{self.ip}:{self.port}/v2/state", timeout=5) as r:
            result: dict[str, Any] = json.loads(r.read())
            return result

    def metrics(self) -> str:
        """The sidecar's Prometheus text."""
        with urllib.request.urlopen(f"http://{self.ip}:{self.port}/metrics", timeout=5) as r:
            return str(r.read().decode())

    def pushes_received(self) -> float:
        """Every push this sidecar answered: accepted (applied, unchanged) or refused."""
        total = 0.0
        for line in self.metrics().splitlines():
            if line.startswith(
                ("hotconf_sidecar_pushes_accepted_total{", "hotconf_sidecar_pushes_rejected_total{")
            ):
                total += float(line.rpartition(" ")[2])
        return total

    def stop(self) -> None:
        _stop(self.worker)
        _stop(self.sidecar)


class OperatorProcess:
    """The real ``hotconf-operator`` console script against the emulator."""

    def __init__(
        self,
        *,
        kubeconfig: Path,
        key_file: Path | None,
        workdir: Path,
        extra: tuple[str, ...] = (),
        key_secret: str | None = None,
        standalone: bool = True,
        health_port: int = 0,
        log_name: str = "operator.log",
    ) -> None:
        """``key_file`` or ``key_secret`` ("ns/name") names the signing key; without
        ``standalone`` the operator peers (``extra`` may then carry ``--peering-priority``)."""
        self.kubeconfig = kubeconfig
        self.key_file = key_file
        self.key_secret = key_secret
        self.standalone = standalone
        self.health_port = health_port
        self.log = workdir / log_name
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.metrics_port = free_port()

    def start(self) -> OperatorProcess:
        env = {**_env(), "KUBECONFIG": str(self.kubeconfig)}
        key = (
            ["--signing-key-file", str(self.key_file)]
            if self.key_file is not None
            else ["--signing-key-secret", str(self.key_secret)]
        )
        args = [
            str(BIN / "hotconf-operator"),
            *(["--standalone"] if self.standalone else []),
            *key,
            "--metrics-port", str(self.metrics_port),
            "--health-port", str(self.health_port),
            # No injection webhook unless a test asks for one in `extra` (the last flag wins).
            "--webhook-port", "0",
            "--reconcile-interval", "2",
            "--push-attempts", "3",
            *self.extra,
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(args, env=env, stdout=log, stderr=log)
        return self

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def metrics(self) -> str:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as r:
            return str(r.read().decode())

    def metric(self, name: str, **labels: str) -> float | None:
        """One sample of the operator's metrics (None if absent or not serving yet)."""
        try:
            text = self.metrics()
        except OSError:
            return None
        return sample(text, name, **labels)

    def kill(self) -> None:
        """SIGKILL: no cleanup, as when a node dies."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> int | None:
        _stop(self.proc, timeout=15)
        return None if self.proc is None else self.proc.returncode


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of sample ``name{labels}`` in a Prometheus text exposition, or None."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        got_name, _, got_labels = head.partition("{")
        if got_name != name:
            continue
        pairs = sorted(p for p in got_labels.rstrip("}").split(",") if p)
        if ",".join(pairs) == want:
            return float(value)
    return None


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    """Run kubectl 1.33 as a user would, with the test's kubeconfig (and its namespace)."""
    result = subprocess.run(
        [str(KUBECTL), *args],
        input=stdin,
        capture_output=True,
        text=True,
        # The venv's bin on PATH: kubectl finds the `kubectl-hotconf` plugin there.
        env={
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        },
        timeout=30,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}{result.stdout}")
    return result.stdout


def configmap_manifest(
    name: str,
    data: Mapping[str, str],
    *,
    annotations: Mapping[str, str] | None = None,
    namespace: str | None = None,
) -> str:
    """A labelled ConfigMap as JSON; without ``namespace``, kubectl's context namespace."""
    metadata: dict[str, Any] = {
        "name": name,
        "labels": {"hotconf.dev/enabled": "true"},
        "annotations": dict(annotations or {}),
    }
    if namespace:
        metadata["namespace"] = namespace
    return json.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": dict(data)}
    )


@contextlib.contextmanager
def pods(
    api: Api,
    workdir: Path,
    count: int,
    *,
    configmap: str,
    public_key_pem: str,
    first_ip: int = 10,
    **options: Any,
) -> Iterator[list[Pod]]:
    """``count`` pods on 127.0.0.<first_ip>... (all started, their workers connected, then
    Ready; all stopped afterwards)."""
    started: list[Pod] = []
    try:
        for i in range(count):
            pod = Pod(
                api=api,
                workdir=workdir,
                name=f"web-{i}",
                ip=f"127.0.0.{first_ip + i}",
                configmap=configmap,
                public_key_pem=public_key_pem,
                **options,
            )
            started.append(pod)
            pod.launch()
        for pod in started:  # the workers start side by side
            pod.set_ready()
        yield started
    finally:
        for pod in started:
            pod.stop()
