"""The built image runs as the chart asks: user 65532, read-only root filesystem, every
capability dropped, no privilege escalation; both console scripts start there; it holds neither
an installer nor the Kubernetes client; its OCI labels name the version and the commit."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from typing import Any

import pytest
from hotconf_e2e import REPO
from hotconf_e2e.container import PODMAN, ULIMITS, chart_security_context, security_flags

# The first test to run pays the image build: about 2 minutes on a fresh machine (debootstrap
# included), seconds once cached.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]


def run(image: str, *command: str, user: bool = True) -> subprocess.CompletedProcess[str]:
    """``command`` in a throwaway container with the chart's security context; without
    ``user``, as the image's own USER (a pod that sets no runAsUser)."""
    context = chart_security_context()
    if not user:
        context.pop("runAsUser")
        context.pop("runAsGroup")
    args = [*PODMAN, "run", "--rm", "--network", "none", *ULIMITS,
            *security_flags(context), image, *command]  # fmt: skip
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def inspect(image: str) -> dict[str, Any]:
    out = subprocess.run([*PODMAN, "image", "inspect", image], capture_output=True, text=True,
                         timeout=30, check=True).stdout  # fmt: skip
    found: dict[str, Any] = json.loads(out)[0]
    return found


def test_both_console_scripts_start_unprivileged(image: str) -> None:
    for script in ("hotconf-operator", "hotconf-sidecar"):
        done = run(image, script, "--help")
        assert done.returncode == 0, f"{script}: {done.stderr}"
        assert done.stdout.startswith(f"usage: {script}"), done.stdout


def test_runs_as_65532_without_capabilities_on_a_read_only_root(image: str) -> None:
    probe = (
        "import os, pathlib\n"
        "print(os.getuid(), os.getgid())\n"
        "print(pathlib.Path('/proc/self/status').read_text())\n"
        "for path in ('/probe', '/tmp/probe', '/opt/venv/probe'):\n"
        "    try:\n"
        "        open(path, 'w').close()\n"
        "        print('wrote', path)\n"
        "    except OSError as exc:\n"
        "        print('refused', path, exc.strerror)\n"
    )
    done = run(image, "python3", "-c", probe, user=False)
    assert done.returncode == 0, done.stderr
    first, *rest = done.stdout.splitlines()
    assert first == "65532 65532"
    status = dict(line.split(":\t", 1) for line in rest if ":\t" in line)
    assert int(status["CapEff"], 16) == 0 and int(status["CapBnd"], 16) == 0, status
    assert status["NoNewPrivs"].strip() == "1"
    refused = [line for line in rest if line.startswith(("wrote", "refused"))]
    assert refused == [
        "refused /probe Read-only file system",
        "refused /tmp/probe Read-only file system",
        "refused /opt/venv/probe Read-only file system",
    ]


def test_the_default_command_is_the_operator(image: str) -> None:
    config = inspect(image)["Config"]
    assert config["Cmd"] == ["hotconf-operator"]
    assert not config.get("Entrypoint")
    assert config["User"] == "65532:65532"


def test_holds_no_installer_and_no_kubernetes_client(image: str) -> None:
    probe = (
        "import importlib.util as u\n"
        "print([m for m in ('pip', 'setuptools', 'kubernetes', 'hatchling') if u.find_spec(m)])"
    )
    done = run(image, "python3", "-c", probe)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    # What the operator and the sidecar import is there, compiled: nothing to write at start.
    done = run(image, "python3", "-X", "importtime", "-c", "import hotconf_operator.__main__, "
               "hotconf_sidecar.__main__, uvloop, httptools")  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_oci_labels_name_version_revision_and_creation(image: str) -> None:
    labels = inspect(image)["Config"]["Labels"]
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert labels["org.opencontainers.image.version"] == project["version"]
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", labels["org.opencontainers.image.revision"])
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", labels["org.opencontainers.image.created"]
    )
    assert labels["org.opencontainers.image.source"]
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
