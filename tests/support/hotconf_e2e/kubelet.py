"""The harness plays the kubelet for pods the webhook injected: it runs what the stored spec says.

There is no kubelet in the test control plane. :class:`KubeletPod` creates a Pod labelled
``hotconf.dev/inject``, reads back what the API server stored after calling the operator's
webhook, and starts the processes that spec describes on this machine: the native sidecar (the
init container ``hotconf-sidecar`` with ``restartPolicy: Always``) from its ``command`` and
``env``, with Downward API values resolved from the stored object and each ``emptyDir`` mount
mapped to a directory of the pod's own; then one application process (``hotconf_e2e.worker``)
with the ``HOTCONF_SOCKET`` the injection gave the application container. Once the sidecar's
readiness probe answers it writes the pod's status (Running, Ready, ``status.podIP``) through
``/status``, as a kubelet does.

Each pod is one loopback address (127.0.0.x) standing for its network namespace: a listen
address on all interfaces (``0.0.0.0:PORT``) becomes ``<podIP>:PORT``, so that many pods can use
the same port, as they can on a cluster.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from hotconf_e2e import BIN, Pod, _env, running_status

__all__ = ["KubeletPod", "sidecar_of"]


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
        **options: Any,
    ) -> None:
        super().__init__(public_key_pem="", **options)
        self.annotations = {"hotconf.dev/configmaps": self.configmap, **(annotations or {})}
        self.labels = {"hotconf.dev/inject": "true", **(labels or {})}
        self.stored: dict[str, Any] = {}
        # emptyDir volumes live under a short path: a Unix socket path has at most 107 bytes.
        self.volumes = Path(tempfile.mkdtemp(prefix="hotconf-pod-"))

    def create_object(self) -> None:
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
            env[item["name"]] = value
        return env

    def start_sidecar(self) -> None:
        sidecar = sidecar_of(self.stored)
        env = {**_env(), **self._resolve_env(sidecar)}
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
        self.start_worker()
        self.api.set_pod_status(self.name, running_status(self.ip), self.namespace)
        return self

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.volumes, ignore_errors=True)

    def stored_now(self) -> dict[str, Any]:
        got: dict[str, Any] = self.api.request(
            "GET", f"/api/v1/namespaces/{self.namespace}/pods/{self.name}"
        )
        return got
