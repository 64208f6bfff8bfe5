"""The harness plays the kubelet for pods the webhook injected: it runs what the stored spec says.

There is no kubelet in the test control plane. :class:`KubeletPod` creates a Pod labelled
``hotconf.dev/inject``, reads back what the API server stored after calling the operator's
webhook, and starts the processes that spec describes on this machine: the native sidecar (the
init container ``hotconf-sidecar`` with ``restartPolicy: Always``) from its ``command`` and
``env``, with Downward API values resolved from the stored object and each ``emptyDir`` mount
mapped to a directory of the pod's own; then one application process: ``hotconf_e2e.worker``
with the ``HOTCONF_SOCKET`` the injection gave the application container, or, with ``app=``, any
program (a shell script, a Node server) run with the application container's env, in which
every path inside one of its volumes (``HOTCONF_FILES_DIR``: the files adapter's emptyDir) is
that volume's directory, the one the sidecar writes to. Once the sidecar's readiness probe
answers (and the application's ``app_ready`` file exists, standing for its readiness probe) it
writes the pod's status (Running, Ready, ``status.podIP``) through ``/status``, as a kubelet does.

A sidecar told to signal a process by name must be in a pod that shares its process namespace,
or a kubelet would give it a PID namespace of its own where the application is not: the harness
refuses to run it otherwise. Here every process of the host is visible, so tests give their
application a name unique on the host.

Each pod is one loopback address (127.0.0.x) standing for its network namespace: a listen
address on all interfaces (``0.0.0.0:PORT``) becomes ``<podIP>:PORT``, and ``localhost`` in a URL
(the notify URL) the pod's address, so that many pods can use the same port, as they can on a
cluster.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from kube_control_plane import ApiError

from hotconf_e2e import BIN, OperatorProcess, Pod, _env, free_port, running_status, wait_for
from hotconf_e2e.chart import ChartRelease, helm, install_chart

__all__ = ["KubeletPod", "injecting_operator", "sidecar_of"]


@contextlib.contextmanager
def injecting_operator(cluster: Any, workdir: Path, *, name: str) -> Iterator[OperatorProcess]:
    """The chart installed as release ``name`` with its webhook calling
    ``https://127.0.0.1:PORT`` for ``cluster``'s namespace only (failurePolicy Fail: a webhook
    that is not called fails the test), and the operator serving it there, as the chart's
    ServiceAccount, with the certificate and caBundle it makes itself. Checks that the operator
    exits 0, and uninstalls the release."""
    port = free_port()
    release: ChartRelease = install_chart(
        cluster.control_plane,
        release=name,
        namespace=name,
        values={
            "webhook.url": f"https://127.0.0.1:{port}/inject-sidecar",
            "webhook.failurePolicy": "Fail",
            "webhook.namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name": (
                cluster.namespace
            ),
        },
    )
    try:
        operator = OperatorProcess(
            kubeconfig=release.operator_kubeconfig(workdir / f"{name}.kubeconfig"),
            key_file=cluster.key_file,
            workdir=cluster.workdir,
            extra=(
                "--webhook-port", str(port),
                "--webhook-cert-secret", f"{release.namespace}/{name}-webhook-tls",
                "--webhook-hosts", "127.0.0.1",
                "--webhook-configuration", name,
                "--sidecar-image", "registry.example/hotconf:1",
            ),
        ).start()  # fmt: skip
        try:
            yield operator
        finally:
            code = operator.stop()
        assert code == 0, operator.logs()[-4000:]
    finally:
        helm(cluster.control_plane.kubeconfig, "uninstall", release.name, "-n", release.namespace)


def sidecar_of(pod: dict[str, Any]) -> dict[str, Any]:
    """The injected native sidecar of a stored pod; fails naming what is there instead."""
    for container in pod["spec"].get("initContainers") or []:
        if container.get("name") == "hotconf-sidecar":
            assert container.get("restartPolicy") == "Always", container
            return dict(container)
    names = [c["name"] for c in pod["spec"].get("initContainers") or []]
    raise AssertionError(f"pod {pod['metadata']['name']} has no hotconf-sidecar (init: {names})")


class KubeletPod(Pod):
    """A pod created through the API server (and so through the webhook), run as its spec says."""

    def __init__(
        self,
        *,
        annotations: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
        pod_spec: dict[str, Any] | None = None,
        app: Sequence[str] | None = None,
        app_env: dict[str, str] | None = None,
        app_ready: Path | None = None,
        **options: Any,
    ) -> None:
        """``pod_spec``: fields added to the Pod's spec (e.g. a ``securityContext``); ``app``:
        the application's command instead of the Python worker, with ``app_env`` added to the
        container's env; ``app_ready``: a file the application creates once it is ready."""
        super().__init__(public_key_pem="", **options)
        self.annotations = {"hotconf.dev/configmaps": self.configmap, **(annotations or {})}
        self.labels = {"hotconf.dev/inject": "true", **(labels or {})}
        self.pod_spec = pod_spec or {}
        self.app = list(app) if app is not None else None
        self.app_env = app_env or {}
        self.app_ready = app_ready
        self.application: subprocess.Popen[bytes] | None = None
        self.stored: dict[str, Any] = {}
        # emptyDir volumes live under a short path: a Unix socket path has at most 107 bytes.
        self.volumes = Path(tempfile.mkdtemp(prefix="hotconf-pod-"))

    def create_through_webhook(self) -> None:
        """Create the pod, retrying while the operator's webhook is still starting (the API
        server then refuses it, with failurePolicy Fail)."""

        def attempt() -> bool:
            try:
                self.create_object()
            except ApiError as exc:
                if "inject.hotconf.dev" in str(exc):
                    return False
                raise
            return True

        wait_for(f"pod {self.name} admitted through the webhook", attempt, timeout=30, every=0.2)

    def create_object(self, *, ready: bool = True) -> None:
        """Create the pod as stored, without a status (``ready`` does not apply: :meth:`run`
        writes the status once the probes pass)."""
        self.stored = self.api.create_pod(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": self.name,
                    "labels": self.labels,
                    "annotations": self.annotations,
                },
                "spec": {
                    "containers": [{"name": "app", "image": "example/app"}],
                    "automountServiceAccountToken": False,
                    "securityContext": {"fsGroup": 65532},
                    **self.pod_spec,
                },
            },
            self.namespace,
        )
        self.uid_in_api = self.stored["metadata"]["uid"]
        self.port = int(self.stored["metadata"]["annotations"]["hotconf.dev/port"])

    def _mounts(self, container: dict[str, Any]) -> dict[str, Path]:
        volumes = {v["name"]: v for v in self.stored["spec"].get("volumes") or []}
        mounts = {}
        for mount in container.get("volumeMounts") or []:
            volume = volumes[mount["name"]]
            assert "emptyDir" in volume, f"only emptyDir volumes are played here: {volume}"
            local = self.volumes / mount["name"]
            local.mkdir(parents=True, exist_ok=True)
            mounts[mount["mountPath"]] = local
        return mounts

    def _resolve_env(self, container: dict[str, Any]) -> dict[str, str]:
        meta = self.stored["metadata"]
        fields = {"metadata.name": meta["name"], "metadata.namespace": meta["namespace"],
                  "metadata.uid": meta["uid"], "status.podIP": self.ip}  # fmt: skip
        mounts = self._mounts(container)
        env: dict[str, str] = {}
        for item in container.get("env") or []:
            if "value" in item:
                value = str(item["value"])
            else:
                path = item["valueFrom"]["fieldRef"]["fieldPath"]
                assert path in fields, f"Downward API field {path} is not played here"
                value = fields[path]
            for mount_path, local in mounts.items():  # a path inside a volume: its local twin
                if value == mount_path or value.startswith(mount_path + "/"):
                    value = str(local) + value[len(mount_path) :]
            if value.startswith("0.0.0.0:"):  # all interfaces of the pod: its own address
                value = f"{self.ip}:{value.partition(':')[2]}"
            for loopback in ("localhost", "127.0.0.1"):  # in a URL: the pod's own loopback
                value = value.replace(f"://{loopback}:", f"://{self.ip}:")
            env[item["name"]] = value
        return env

    def start_sidecar(self) -> None:
        sidecar = sidecar_of(self.stored)
        env = {**_env(), **self._resolve_env(sidecar)}
        if env.get("HOTCONF_NOTIFY_PROCESS"):
            assert self.stored["spec"].get("shareProcessNamespace") is True, (
                "a sidecar that signals a process by name needs shareProcessNamespace: true; "
                "a kubelet would give it its own PID namespace, where the application is not"
            )
        env.setdefault("HOTCONF_ACK_TIMEOUT", "3")
        self.socket = Path(env["HOTCONF_SOCKET"])
        self.public_key_pem = env["HOTCONF_OPERATOR_PUBLIC_KEY"]
        command = [
            str(BIN / sidecar["command"][0]),
            *sidecar["command"][1:],
            *sidecar.get("args", []),
        ]
        with (self.dir / "sidecar.log").open("ab") as log:
            self.sidecar = subprocess.Popen(command, env=env, stdout=log, stderr=log)

    def start(self) -> KubeletPod:
        self.create_object()
        return self.run()

    def run(self) -> KubeletPod:
        """Run the stored pod: sidecar, its readiness, the application, then the pod's status."""
        self.uid = self.uid_in_api
        self.start_sidecar()
        self.wait_sidecar()  # the readiness probe
        # The application container's socket, as the injection set it.
        app = self.stored["spec"]["containers"][0]
        app_env = self._resolve_env(app)
        self.socket = Path(app_env["HOTCONF_SOCKET"])
        if self.app is None:
            self.start_worker()
        else:
            self.start_application(app_env)
        self.api.set_pod_status(self.name, running_status(self.ip), self.namespace)
        return self

    def start_application(self, container_env: dict[str, str]) -> None:
        """Run ``app`` as the application container, and wait for its ``app_ready`` file."""
        assert self.app is not None
        env = {**os.environ, **container_env, **self.app_env}
        with (self.dir / "app.log").open("ab") as log:
            self.application = subprocess.Popen(
                self.app, env=env, stdout=log, stderr=log, start_new_session=True
            )
        ready = self.app_ready
        if ready is not None:

            def started() -> bool:
                assert self.application is not None
                if self.application.poll() is not None:
                    raise AssertionError(f"application {self.name} exited: {self.logs('app')}")
                return ready.exists()

            wait_for(f"application {self.name} ready", started)

    def local(self, path: str, container: int = 0) -> Path:
        """The directory of this machine that stands for ``path`` in a container of the pod."""
        spec = self.stored["spec"]
        for mount_path, local in self._mounts(spec["containers"][container]).items():
            if path == mount_path or path.startswith(mount_path + "/"):
                return Path(str(local) + path[len(mount_path) :])
        raise AssertionError(f"{path} is on no volume of container {container}")

    def stop(self) -> None:
        if self.application is not None and self.application.poll() is None:
            os.killpg(self.application.pid, 9)  # the whole container: the script and its children
            self.application.wait()
        super().stop()
        shutil.rmtree(self.volumes, ignore_errors=True)

    def stored_now(self) -> dict[str, Any]:
        got: dict[str, Any] = self.api.request(
            "GET", f"/api/v1/namespaces/{self.namespace}/pods/{self.name}"
        )
        return got
