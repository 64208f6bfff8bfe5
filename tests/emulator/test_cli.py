"""``python -m kube_emulator`` runs as a process and stops cleanly.

Proves: it writes a kubeconfig and the port to the ready file; without a ready file it prints
the port; SIGTERM and SIGINT both stop it with exit code 0 while a watch is open.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import urllib.request

import pytest
import yaml
from kube_emulator import EmulatorProcess
from kube_emulator._process import SUPPORT_DIR


def test_ready_file_and_kubeconfig(kube_emulator_process: EmulatorProcess) -> None:
    config = yaml.safe_load(kube_emulator_process.kubeconfig.read_text())
    (cluster,) = config["clusters"]
    assert cluster["cluster"]["server"] == f"http://127.0.0.1:{kube_emulator_process.port}"
    assert config["current-context"] == "kube-emulator"
    with urllib.request.urlopen(f"{kube_emulator_process.url}/version") as response:
        assert json.load(response)["major"] == "1"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_it_cleanly_with_a_watch_open(
    tmp_path: pathlib.Path, signum: signal.Signals
) -> None:
    env = {**os.environ, "PYTHONPATH": str(SUPPORT_DIR)}
    process = subprocess.Popen(
        [sys.executable, "-m", "kube_emulator", "--port", "0"],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        url = f"http://127.0.0.1:{port}/api/v1/configmaps?watch=true"
        with urllib.request.urlopen(url, timeout=10):
            process.send_signal(signum)
            assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
