"""`hotconf dev` never leaves COMMAND behind: killed outright (SIGKILL, where it cannot clean up),
its command still gets SIGTERM from the kernel and exits; a command that does not start is a
clear error with exit status 127."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HOTCONF = Path(sys.executable).parent / "hotconf"
MANIFEST = """apiVersion: v1
kind: ConfigMap
metadata: {name: app, namespace: default}
data: {"app.yaml": "x: 1"}
"""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_command_stops_when_hotconf_dev_is_killed(tmp_path: Path) -> None:
    manifest = tmp_path / "cm.yaml"
    manifest.write_text(MANIFEST)
    pid_file = tmp_path / "pid"
    child = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(120)"
    dev = subprocess.Popen(
        [str(HOTCONF), "dev", "--configmap", str(manifest), "--",
         sys.executable, "-c", child, str(pid_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline, "the command never started"
            time.sleep(0.02)
        command_pid = int(pid_file.read_text())
        assert alive(command_pid)
        dev.send_signal(signal.SIGKILL)
        dev.wait(timeout=10)
        deadline = time.monotonic() + 10
        while alive(command_pid):
            assert time.monotonic() < deadline, "COMMAND outlived a killed `hotconf dev`"
            time.sleep(0.02)
    finally:
        if dev.poll() is None:
            dev.kill()
            dev.wait()
        if pid_file.exists() and pid_file.read_text():
            try:
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_missing_command_is_a_clear_error(tmp_path: Path) -> None:
    manifest = tmp_path / "cm.yaml"
    manifest.write_text(MANIFEST)
    result = subprocess.run(
        [str(HOTCONF), "dev", "--configmap", str(manifest), "--", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 127
    assert "cannot start" in result.stderr
