"""An application process running hotconf.run drains its task on SIGTERM (pod shutdown) or
SIGINT (Ctrl-C) and exits 0, in every mode."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hotconf_client_tasks import eventually, lines

from hotconf.testing import FakeRelay

SUPPORT = Path(__file__).parents[1] / "support"


@pytest.mark.parametrize("mode", ["thread", "process", "asyncio"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_signal_drains_the_task_and_exits_zero(tmp_path: Path, mode: str, sig: int) -> None:
    script = tmp_path / "app.py"
    script.write_text(
        "import hotconf, sys\n"
        "from hotconf_client_tasks import TASKS\n"
        "if __name__ == '__main__':\n"
        "    mode = sys.argv[2]\n"
        "    hotconf.run(TASKS['cooperative'][mode], mode=mode, socket=sys.argv[1])\n"
        "    print('run returned', flush=True)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SUPPORT)}
    log = tmp_path / "log"
    with FakeRelay(tmp_path / "s.sock") as relay:
        relay.publish({"log": str(log), "value": "one", "drain_delay": "0.2"})
        app = subprocess.Popen(
            [sys.executable, str(script), str(relay.path), mode],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            eventually(lambda: lines(log) == ["start one"], what="first generation")
            app.send_signal(sig)
            out, err = app.communicate(timeout=30)
        finally:
            app.kill()
            app.wait()
    assert app.returncode == 0, err.decode()
    assert out == b"run returned\n"
    assert lines(log) == ["start one", "stop one"]
