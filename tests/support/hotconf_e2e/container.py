"""hotconf's image run by podman, as a kubelet would run its containers; for ``tests/container``.

:func:`build_image` calls ``scripts/build-image`` (cached by its inputs) and returns the image's
reference. :class:`Container` is one container of that image started from a Kubernetes
container spec: its ``command`` and ``env``, its ``volumeMounts`` as bind mounts of host
directories, and its ``securityContext`` as podman flags (``runAsUser``/``runAsGroup`` ->
``--user``, ``readOnlyRootFilesystem`` -> ``--read-only`` with no tmpfs added, ``capabilities:
drop: [ALL]`` -> ``--cap-drop ALL``, ``allowPrivilegeEscalation: false`` ->
``no-new-privileges``); ``kill`` is SIGKILL through the runtime, ``start`` again restarts it as
a kubelet restarts a container of the same pod: same volumes, nothing else kept.

:class:`ContainerPod` is an e2e :class:`Pod` whose sidecar is the container the operator's
webhook injects (``sidecar_container``), with the application (``hotconf_e2e.worker``) a
process on the host sharing the socket directory. :class:`OperatorContainer` is
:class:`OperatorProcess` in a container with the chart's security context, logging in with a
kubeconfig of the chart's ServiceAccount (an inline token, mounted read-only).

Every container runs on the host's network (``--network host``): it reaches the test control
plane on 127.0.0.1, and a sidecar listens on its pod's own 127.0.0.x. Containers carry the label
``dev.hotconf.test`` (the session's) and are removed by their owner;
:func:`remove_test_containers` removes any left behind.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from hotconf_e2e import REPO, OperatorProcess, Pod, free_port, wait_for
from hotconf_operator._injection import InjectionSettings, sidecar_container

__all__ = [
    "PODMAN",
    "Container",
    "ContainerPod",
    "OperatorContainer",
    "build_image",
    "chart_security_context",
    "podman",
    "remove_test_containers",
]

PODMAN = ("podman", "--runtime", "runc")
#: Containers of this test session carry this label (its value: the session's process id), so
#: the session removes only its own strays, never those of another suite running beside it.
LABEL = "dev.hotconf.test"
SESSION = str(os.getpid())
#: The runtime cannot raise resource limits on these machines: values below the current ones.
ULIMITS = ("--ulimit", "nofile=1024:4096", "--ulimit", "nproc=1024:4096")
#: The user of the image and of the chart's security contexts.
UID = 65532


def podman(*args: str, timeout: float = 60, check: bool = True) -> str:
    done = subprocess.run(
        [*PODMAN, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed: {done.stderr}{done.stdout}")
    return done.stdout


def build_image() -> str:
    """``scripts/build-image``: the image's reference (built only if its inputs changed)."""
    done = subprocess.run(
        [str(REPO / "scripts" / "build-image")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"scripts/build-image failed:\n{done.stderr[-6000:]}")
    return done.stdout.strip().splitlines()[-1]


def chart_security_context() -> dict[str, Any]:
    """The operator container's security context in charts/hotconf/values.yaml."""
    values = yaml.safe_load((REPO / "charts" / "hotconf" / "values.yaml").read_text())
    return dict(values["securityContext"])


def security_flags(context: Mapping[str, Any]) -> list[str]:
    """podman flags for a Kubernetes container ``securityContext``; fails on what it cannot
    play, so a new field in the chart or the injection is not silently left out."""
    known = {"runAsNonRoot", "runAsUser", "runAsGroup", "readOnlyRootFilesystem",
             "allowPrivilegeEscalation", "capabilities", "seccompProfile"}  # fmt: skip
    assert set(context) <= known, f"securityContext fields not played: {set(context) - known}"
    flags: list[str] = []
    if "runAsUser" in context:
        flags += ["--user", f"{context['runAsUser']}:{context.get('runAsGroup', 0)}"]
    if context.get("runAsNonRoot") and "runAsUser" in context:
        # Without runAsUser the kubelet checks the image's USER; the test of that reads it.
        assert context["runAsUser"] != 0, "runAsNonRoot with runAsUser 0 never starts"
    if context.get("readOnlyRootFilesystem"):
        # Kubernetes adds no tmpfs; podman would mount /tmp, /var/tmp and /run without this.
        flags += ["--read-only", "--read-only-tmpfs=false"]
    if context.get("allowPrivilegeEscalation") is False:
        flags += ["--security-opt", "no-new-privileges"]
    for capability in (context.get("capabilities") or {}).get("drop") or []:
        flags += ["--cap-drop", capability]
    seccomp = (context.get("seccompProfile") or {}).get("type", "RuntimeDefault")
    assert seccomp == "RuntimeDefault", f"seccomp {seccomp} is not played"  # podman's default
    return flags


def owned_dir(path: Path, mode: int = 0o750) -> Path:
    """A directory the image's user owns, as a kubelet prepares an emptyDir with fsGroup."""
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, UID, UID)
    path.chmod(mode)
    return path


def owned_copy(source: Path, directory: Path, name: str) -> Path:
    """``source`` copied into ``directory`` readable by the image's user only (mode 0440), as
    a Secret volume with ``defaultMode: 0440`` and an fsGroup is."""
    owned_dir(directory)
    target = directory / name
    shutil.copyfile(source, target)
    os.chown(target, UID, UID)
    target.chmod(0o440)
    return target


class Container:
    """One container of the image, started from a Kubernetes container spec."""

    def __init__(
        self,
        *,
        image: str,
        role: str,
        command: Sequence[str],
        env: Mapping[str, str],
        mounts: Mapping[str, tuple[Path, bool]],
        security_context: Mapping[str, Any],
        log: Path,
    ) -> None:
        """``mounts``: container path -> (host path, read-only)."""
        self.image = image
        self.name = f"hotconf-test-{role}-{uuid.uuid4().hex[:8]}"
        self.command = list(command)
        self.env = dict(env)
        self.mounts = dict(mounts)
        self.security_context = dict(security_context)
        self.log = log
        self.created = False

    def run_args(self) -> list[str]:
        args = ["run", "--detach", "--name", self.name, "--label", f"{LABEL}={SESSION}",
                "--network", "host", *ULIMITS, *security_flags(self.security_context),
                "--log-driver", "k8s-file", "--log-opt", f"path={self.log}"]  # fmt: skip
        for target, (source, read_only) in self.mounts.items():
            args += ["--volume", f"{source}:{target}{':ro' if read_only else ''}"]
        for key, value in self.env.items():
            args += ["--env", f"{key}={value}"]
        return [*args, self.image, *self.command]

    def start(self) -> Container:
        """The first start creates the container; later ones restart it (after :meth:`kill`)."""
        if self.created:
            podman("start", self.name)
        else:
            podman(*self.run_args())
            self.created = True
        return self

    def inspect(self) -> dict[str, Any]:
        found: list[dict[str, Any]] = json.loads(podman("inspect", "--type", "container",
                                                        self.name))  # fmt: skip
        return found[0]

    def running(self) -> bool:
        return bool(self.created and self.inspect()["State"]["Running"])

    def exit_code(self) -> int | None:
        state = self.inspect()["State"]
        return None if state["Running"] else int(state["ExitCode"])

    def pid(self) -> int:
        return int(self.inspect()["State"]["Pid"])

    def kill(self) -> None:
        """SIGKILL from the runtime: no cleanup, as when the kubelet kills an OOM container."""
        podman("kill", "--signal", "KILL", self.name)
        wait_for(f"{self.name} to be dead", lambda: not self.running(), timeout=15)

    def stop(self, timeout: int = 15) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; removes the container; its exit code."""
        if not self.created:
            return None
        podman("stop", "--time", str(timeout), self.name, timeout=timeout + 30, check=False)
        code = self.exit_code()
        podman("rm", "--force", self.name, check=False)
        self.created = False
        return code

    def logs(self) -> str:
        if not self.log.exists():
            return ""
        # k8s-file lines: "<time> <stream> <F|P> <text>".
        return "\n".join(
            line.split(" ", 3)[-1] for line in self.log.read_text(errors="replace").splitlines()
        )


class ContainerPod(Pod):
    """An e2e pod whose sidecar is the injected sidecar container, run by podman."""

    def __init__(self, *, image: str, **options: Any) -> None:
        super().__init__(**options)
        self.image = image
        # Short host paths: a Unix socket path has at most 107 bytes.
        self.volumes = Path(tempfile.mkdtemp(prefix="hotconf-cpod-"))
        self.container: Container | None = None

    def sidecar_spec(self) -> dict[str, Any]:
        settings = InjectionSettings(
            image=self.image, port=self.port, public_key_pem=self.public_key_pem
        )
        return sidecar_container(settings)

    def start_sidecar(self) -> None:
        if self.container is not None:
            self.container.start()
            return
        spec = self.sidecar_spec()
        fields = {"metadata.name": self.name, "metadata.namespace": self.namespace,
                  "metadata.uid": self.uid}  # fmt: skip
        env: dict[str, str] = {}
        for item in spec["env"]:
            env[item["name"]] = (
                str(item["value"]) if "value" in item else fields[item["valueFrom"]["fieldRef"]
                                                                  ["fieldPath"]]
            )  # fmt: skip
        # The pod's network namespace is its 127.0.0.x here (see hotconf_e2e.kubelet).
        env["HOTCONF_LISTEN"] = f"{self.ip}:{self.port}"
        env["HOTCONF_ACK_TIMEOUT"] = "3"
        env["HOTCONF_LOG_LEVEL"] = self.sidecar_log_level
        mounts = {}
        for mount in spec["volumeMounts"]:
            local = owned_dir(self.volumes / mount["name"], 0o2770)
            mounts[mount["mountPath"]] = (local, bool(mount.get("readOnly")))
            if env["HOTCONF_SOCKET"].startswith(mount["mountPath"] + "/"):
                self.socket = local / env["HOTCONF_SOCKET"][len(mount["mountPath"]) + 1 :]
        self.container = Container(
            image=self.image,
            role=f"sidecar-{self.name}",
            command=[*spec["command"], *spec.get("args", [])],
            env=env,
            mounts=mounts,
            security_context=spec["securityContext"],
            log=self.dir / "sidecar.container.log",
        ).start()

    def wait_sidecar(self) -> None:
        def ready() -> bool:
            assert self.container is not None
            if not self.container.running():
                raise AssertionError(f"sidecar {self.name} exited: {self.logs('sidecar')}")
            try:
                with urllib.request.urlopen(f"http://{self.ip}:{self.port}/readyz", timeout=1) as r:
                    return bool(r.status == 200)
            except OSError:
                return False

        wait_for(f"sidecar container {self.name} ready", ready, timeout=60)

    def logs(self, which: str) -> str:
        if which == "sidecar" and self.container is not None:
            return self.container.logs()
        return super().logs(which)

    def stop(self) -> None:
        super().stop()  # the worker
        if self.container is not None:
            self.container.stop()
        shutil.rmtree(self.volumes, ignore_errors=True)


class OperatorContainer(OperatorProcess):
    """The operator in a container of the image, as the chart runs it (its security context),
    with a kubeconfig of the chart's ServiceAccount."""

    def __init__(self, *, image: str, workdir: Path, **options: Any) -> None:
        options.setdefault("log_name", "operator.container.log")
        super().__init__(workdir=workdir, **options)
        self.image = image
        self.workdir = workdir
        self.container: Container | None = None
        if not self.health_port:
            self.health_port = free_port()

    def start(self) -> OperatorContainer:
        if self.container is not None:
            self.container.start()
            return self
        assert self.key_file is not None, "the container test signs with a key file"
        secrets = self.workdir / "operator-secrets"
        owned_copy(self.kubeconfig, secrets, "kubeconfig")
        owned_copy(self.key_file, secrets, "private.pem")
        tmp = owned_dir(self.workdir / "operator-tmp")
        args = [
            "hotconf-operator",
            *(["--standalone"] if self.standalone else []),
            "--signing-key-file", "/etc/hotconf/signing/private.pem",
            "--metrics-port", str(self.metrics_port),
            "--health-port", str(self.health_port),
            "--webhook-port", "0",
            "--reconcile-interval", "2",
            "--push-attempts", "3",
            *self.extra,
        ]  # fmt: skip
        self.container = Container(
            image=self.image,
            role="operator",
            command=args,
            env={"KUBECONFIG": "/etc/hotconf/kube/kubeconfig"},
            mounts={
                "/etc/hotconf/kube/kubeconfig": (secrets / "kubeconfig", True),
                "/etc/hotconf/signing/private.pem": (secrets / "private.pem", True),
                "/tmp": (tmp, False),
            },
            security_context=chart_security_context(),
            log=self.log,
        ).start()
        return self

    def healthz(self) -> int | None:
        try:
            url = f"http://127.0.0.1:{self.health_port}/healthz"
            with urllib.request.urlopen(url, timeout=1) as r:
                return int(r.status)
        except OSError:
            return None

    def wait_healthy(self, timeout: float = 60) -> float:
        """Seconds until /healthz answers 200."""
        started = time.monotonic()
        wait_for("operator container /healthz 200", lambda: self.healthz() == 200, timeout)
        return time.monotonic() - started

    def logs(self) -> str:
        return self.container.logs() if self.container is not None else ""

    def kill(self) -> None:
        if self.container is not None:
            self.container.kill()

    def stop(self) -> int | None:
        return self.container.stop() if self.container is not None else None


def remove_test_containers() -> None:
    """Remove every container a test left behind (by the label all of them carry)."""
    names = podman("ps", "--all", "--filter", f"label={LABEL}={SESSION}", "--format", "{{.Names}}",
                   check=False).split()  # fmt: skip
    if names:
        podman("rm", "--force", *names, check=False)
