"""The README's demo command works as a new user would run it: `scripts/demo` starts the
quickstart worker under `hotconf dev`; saving an edit of the ConfigMap (by rename, as editors do)
restarts the worker on the new value; an edit the worker rejects is reported as a NACK; an invalid
edit after it prints the error with file and line and names the revision the worker still runs
(the one it ACKed, not the one it rejected) while the worker keeps running it; the worker's lines
never interleave; Ctrl-C stops everything with status 0."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
from pathlib import Path

from hotconf_client_tasks import eventually

ROOT = Path(__file__).parents[2]


class Output:
    """Collects a process's merged output lines in a thread."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert process.stdout is not None
        self.stream = process.stdout
        self.thread = threading.Thread(target=self.read)
        self.thread.start()

    def read(self) -> None:
        for line in self.stream:
            self.lines.append(line.rstrip("\n"))

    def has(self, text: str, *, after: int = 0) -> bool:
        return any(text in line for line in self.lines[after:])


def save_by_rename(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".swp")
    temporary.write_text(text)
    os.replace(temporary, path)


def test_demo_reloads_on_save_and_survives_a_bad_save(tmp_path: Path) -> None:
    # The user's own copy of the example, so the test never edits the checkout.
    configmap = tmp_path / "configmap.yaml"
    shutil.copy(ROOT / "examples/quickstart/configmap.yaml", configmap)
    original = configmap.read_text()

    demo = subprocess.Popen(
        [str(ROOT / "scripts/demo")],
        cwd=ROOT,
        env={**os.environ, "HOTCONF_DEMO_CONFIGMAP": str(configmap)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output = Output(demo)
    try:
        eventually(lambda: output.has(f"edit {configmap}"), timeout=100)
        eventually(lambda: output.has("worker: Hello from hotconf"), what="the first greeting")

        save_by_rename(configmap, original.replace("Hello from hotconf", "Hello again"))
        eventually(lambda: output.has("worker: Hello again"), what="the new greeting")
        # The worker prints this line right after the greeting: wait for it, do not race it.
        eventually(lambda: output.has("restarted on the new revision"), what="the restart line")
        eventually(lambda: output.has("(ACK)"), what="the ACK report")
        [acked] = [line for line in output.lines if line.endswith("(ACK)")][-1:]
        runs = acked.split(" runs revision ", 1)[1].split()[0]

        # A config the worker rejects: it keeps running "Hello again".
        save_by_rename(configmap, original.replace("greeting: Hello from hotconf", "greetng: x"))
        eventually(lambda: output.has("(NACK)"), what="the NACK report")
        [nacked] = [line for line in output.lines if line.endswith("text") and "NACK" in line][:1]
        assert runs not in nacked

        before_bad_save = len(output.lines)
        save_by_rename(configmap, original.replace("Hello from hotconf", "@oops"))
        eventually(lambda: output.has("invalid YAML"), what="the error")
        [error] = [line for line in output.lines if "invalid YAML" in line]
        assert f"{configmap}:12: data.app.yaml: invalid YAML" in error
        # It names the revision the worker runs (its last ACK), not the one it rejected.
        eventually(lambda: output.has("not relayed"), what="the not-relayed line")
        [kept] = [line for line in output.lines if "not relayed" in line]
        assert kept.endswith(f"the application keeps revision {runs}")
        mark = len(output.lines)
        eventually(lambda: output.has("worker: Hello again", after=mark), what="still running")
        assert not output.has("draining", after=before_bad_save)

        os.killpg(demo.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        assert demo.wait(timeout=30) == 0
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
            # The worker runs in a process group of its own (hotconf dev forwards signals).
            for line in output.lines:
                if "; started " in line and "(pid " in line:
                    worker = int(line.rsplit("(pid ", 1)[1].rstrip(")"))
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(worker, signal.SIGKILL)
        output.thread.join()
        output.stream.close()
        print("\n".join(output.lines))
    assert output.has("worker: stopped after")
    # The worker's two threads (its work, hotconf's events) write whole lines.
    assert all(line.count("worker: ") <= 1 for line in output.lines)
    assert output.has("exited with status 0")
