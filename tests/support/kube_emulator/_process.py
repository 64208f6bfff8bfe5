"""``EmulatorProcess``: the emulator in a child process, for tests and benchmarks.

Used by the pytest fixtures (``pytest_plugin``) and by anything that needs an API server that
does not share its event loop (kopf in a thread, kubectl, the operator as a process).
It starts ``python -m kube_emulator``, waits for its ready file, and stops it with SIGTERM,
then SIGKILL after a deadline.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import tempfile
import time
from types import TracebackType
from typing import Self

SUPPORT_DIR = pathlib.Path(__file__).resolve().parent.parent  # tests/support


class EmulatorProcessError(RuntimeError):
    """The emulator process did not start, or died; the message carries its output."""


class EmulatorProcess:
    """A running ``python -m kube_emulator``::

    with EmulatorProcess(workdir=tmp_path) as api:
        subprocess.run(["kubectl", "get", "ns"], env={**os.environ, **api.env})
    """

    def __init__(
        self,
        *,
        workdir: pathlib.Path | None = None,
        start_timeout: float = 20.0,
        stop_timeout: float = 5.0,
        python: str = sys.executable,
    ) -> None:
        self._own_dir = None if workdir is not None else tempfile.TemporaryDirectory()
        self.workdir = workdir if workdir is not None else pathlib.Path(self._own_dir.name)  # type: ignore[union-attr]
        self.kubeconfig = self.workdir / "kubeconfig"
        self.ready_file = self.workdir / "kube-emulator.port"
        self.log_file = self.workdir / "kube-emulator.log"
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._python = python
        self._process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """Environment variables that point clients (kubectl, kopf, kubernetes) here."""
        return {"KUBECONFIG": str(self.kubeconfig)}

    @property
    def pid(self) -> int:
        if self._process is None:
            raise EmulatorProcessError("the emulator process is not running")
        return self._process.pid

    def start(self) -> None:
        if self._process is not None:
            raise EmulatorProcessError("the emulator process is already started")
        self.ready_file.unlink(missing_ok=True)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(SUPPORT_DIR), *filter(None, [env.get("PYTHONPATH")])]
        )
        with self.log_file.open("wb") as log:
            self._process = subprocess.Popen(
                [
                    self._python,
                    "-m",
                    "kube_emulator",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--kubeconfig",
                    str(self.kubeconfig),
                    "--ready-file",
                    str(self.ready_file),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + self._start_timeout
        while not self.ready_file.exists():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise EmulatorProcessError(
                    f"the emulator did not start within {self._start_timeout}s;"
                    f" its output:\n{self.log_file.read_text(errors='replace')}"
                )
            time.sleep(0.02)
        self.port = int(self.ready_file.read_text().strip())

    def stop(self) -> int | None:
        """SIGTERM, wait, then SIGKILL; returns the exit code. Idempotent."""
        process, self._process = self._process, None
        if process is None:
            return None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(self._stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._own_dir is not None:
            self._own_dir.cleanup()
            self._own_dir = None
        return process.returncode

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
