"""The image: its size, what is in it, and cold start (container start to ready).

    .venv/bin/python bench/image.py [--rounds 10]

Builds (or finds, cached) the image with ``scripts/build-image``, then prints:

- sizes from ``podman image inspect`` (uncompressed, as ``podman images`` shows them): the image,
  its base (the label ``org.opencontainers.image.base.name`` that scripts/build-image sets), and
  their difference (the final stage's one layer, the venv), then the largest packages of the
  venv (``du`` inside the image);
- cold start, ``--rounds`` times each, as the chart runs the containers (user 65532, read-only
  root, no capabilities; ``hotconf_e2e.container``) on the host network: the sidecar, from
  ``podman run`` being invoked to its ``/readyz`` answering 200, and the operator, from ``podman
  run`` to its ``/healthz`` answering 200 with a real kube-apiserver and etcd to log in to
  (``kube_control_plane``, admin kubeconfig, audit off). Polling every 5 ms. For comparison the
  same console scripts from the repository's ``.venv`` as plain processes (no container): the
  difference is what the runtime (podman, conmon, runc) adds. Medians, min and max.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))

from hotconf_e2e import BIN, free_port, make_key
from hotconf_e2e.container import (
    PODMAN,
    ULIMITS,
    Container,
    build_image,
    chart_security_context,
    owned_copy,
    owned_dir,
    podman,
)
from kube_control_plane import ControlPlane


def status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return int(r.status)
    except OSError:
        return None


def until_200(url: str, alive: Callable[[], bool], timeout: float = 60) -> float:
    """Seconds from now until ``url`` answers 200; fails if ``alive()`` turns false."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if status(url) == 200:
            return time.monotonic() - started
        if not alive():
            raise RuntimeError(f"died before {url} answered")
        time.sleep(0.005)
    raise RuntimeError(f"{url} not 200 after {timeout} s")


def sizes(image: str) -> None:
    info = json.loads(podman("image", "inspect", image))[0]
    base = info["Labels"]["org.opencontainers.image.base.name"]  # set by scripts/build-image
    base_size = json.loads(podman("image", "inspect", base))[0]["Size"]
    print(f"image  {image}")
    print(f"  size             {info['Size'] / 1e6:7.1f} MB")
    print(f"  base             {base_size / 1e6:7.1f} MB  {base}")
    print(f"  venv layer       {(info['Size'] - base_size) / 1e6:7.1f} MB  (the difference)")
    listing = subprocess.run(
        [*PODMAN, "run", "--rm", "--network", "none", *ULIMITS, image, "sh", "-c",
         "du -sk /opt/venv/lib/python3*/site-packages/* | sort -rn | head -n 12"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    print("  largest in the venv (kB):")
    for line in listing.splitlines():
        kb, _, path = line.partition("\t")
        print(f"    {int(kb):7d}  {path.rpartition('/')[2]}")


def sidecar_container(image: str, work: Path, key_pem: str) -> tuple[Container, str]:
    port = free_port()
    env = {"HOTCONF_POD_NAMESPACE": "bench", "HOTCONF_POD_NAME": "bench", "HOTCONF_POD_UID": "1",
           "HOTCONF_LISTEN": f"127.0.0.1:{port}", "HOTCONF_SOCKET": "/run/hotconf/hotconf.sock",
           "HOTCONF_STATE_DIR": "/var/lib/hotconf",
           "HOTCONF_OPERATOR_PUBLIC_KEY": key_pem}  # fmt: skip
    mounts = {"/run/hotconf": (owned_dir(work / "run"), False),
              "/var/lib/hotconf": (owned_dir(work / "state"), False)}  # fmt: skip
    container = Container(image=image, role="bench-sidecar", command=["hotconf-sidecar"],
                          env=env, mounts=mounts, security_context=chart_security_context(),
                          log=work / "sidecar.log")  # fmt: skip
    return container, f"http://127.0.0.1:{port}/readyz"


def operator_args(health: int, key: str) -> list[str]:
    return ["hotconf-operator", "--standalone", "--signing-key-file", key,
            "--health-port", str(health), "--metrics-port", str(free_port()),
            "--webhook-port", "0"]  # fmt: skip


def timed_container(container: Container, url: str) -> float:
    started = time.monotonic()
    container.start()
    try:
        until_200(url, container.running)
        return time.monotonic() - started
    finally:
        container.stop(timeout=5)


def timed_process(args: list[str], env: dict[str, str], url: str) -> float:
    started = time.monotonic()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        until_200(url, lambda: proc.poll() is None)
        return time.monotonic() - started
    finally:
        proc.terminate()
        proc.wait(10)


def report(name: str, seconds: list[float]) -> None:
    ms = [s * 1000 for s in seconds]
    print(f"  {name:34s} median {statistics.median(ms):6.0f} ms  "
          f"min {min(ms):6.0f}  max {max(ms):6.0f}  (n={len(ms)})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    started = time.monotonic()
    image = build_image()
    print(f"scripts/build-image: {time.monotonic() - started:.1f} s")
    sizes(image)

    with tempfile.TemporaryDirectory(prefix="hotconf-bench-image-") as tmp:
        work = Path(tmp)
        key_pem = make_key(work / "signing.pem")
        if args.rounds == 0:
            return
        print("cold start (start to ready):")
        sidecar: list[float] = []
        for i in range(args.rounds):
            container, url = sidecar_container(image, work / f"s{i}", key_pem)
            sidecar.append(timed_container(container, url))
        report("sidecar container -> /readyz", sidecar)

        process: list[float] = []
        for i in range(args.rounds):
            port = free_port()
            state = work / f"p{i}"
            proc_args = [str(BIN / "hotconf-sidecar"), "--listen", f"127.0.0.1:{port}",
                         "--socket", str(state / "s.sock"),
                         "--state-dir", str(state / "st")]  # fmt: skip
            env = {"HOTCONF_POD_NAMESPACE": "bench", "HOTCONF_POD_NAME": "bench",
                   "HOTCONF_POD_UID": "1", "HOTCONF_OPERATOR_PUBLIC_KEY": key_pem}  # fmt: skip
            process.append(timed_process(proc_args, env, f"http://127.0.0.1:{port}/readyz"))
        report("sidecar process (.venv) -> /readyz", process)

        with ControlPlane(work / "control-plane", audit=False) as cp:
            kubeconfig = cp.write_kubeconfig(work / "kubeconfig")
            secrets = work / "secrets"
            owned_copy(kubeconfig, secrets, "kubeconfig")
            owned_copy(work / "signing.pem", secrets, "private.pem")
            operator: list[float] = []
            for i in range(args.rounds):
                health = free_port()
                container = Container(
                    image=image, role="bench-operator",
                    command=operator_args(health, "/etc/hotconf/signing/private.pem"),
                    env={"KUBECONFIG": "/etc/hotconf/kube/kubeconfig"},
                    mounts={"/etc/hotconf/kube/kubeconfig": (secrets / "kubeconfig", True),
                            "/etc/hotconf/signing/private.pem": (secrets / "private.pem", True),
                            "/tmp": (owned_dir(work / f"tmp{i}"), False)},
                    security_context=chart_security_context(), log=work / f"operator{i}.log",
                )  # fmt: skip
                operator.append(timed_container(container, f"http://127.0.0.1:{health}/healthz"))
            report("operator container -> /healthz", operator)
            process = []
            for _ in range(args.rounds):
                health = free_port()
                env = {"KUBECONFIG": str(kubeconfig), "PATH": str(BIN)}
                command = operator_args(health, str(work / "signing.pem"))
                command[0] = str(BIN / command[0])
                process.append(timed_process(command, env, f"http://127.0.0.1:{health}/healthz"))
            report("operator process (.venv) -> /healthz", process)


if __name__ == "__main__":
    main()
