"""Past the drain deadline each mode stops its task the only way it can: a coroutine is
cancelled, a process is terminated and then killed when it ignores SIGTERM, and a thread that will
not return is reported loudly (log line, STUCK state, event) while no second generation starts until
it returns; with exit_on_stuck the whole process exits with status 70."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hotconf_client_tasks import (
    aignores_draining,
    eventually,
    ignores_draining,
    ignores_sigterm,
    lines,
)

import hotconf
from hotconf.testing import FakeRelay, running

SUPPORT = Path(__file__).parents[1] / "support"


def cfg(tmp_path: Path, value: str) -> dict[str, str]:
    return {"log": str(tmp_path / "log"), "value": value, "release": str(tmp_path / "release")}


def test_stuck_thread_is_reported_and_blocks_the_next_generation(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[hotconf.ReloadEvent] = []
    log = tmp_path / "log"
    with FakeRelay(tmp_path / "s.sock") as relay:
        relay.publish(cfg(tmp_path, "one"))
        runner = hotconf.ThreadRunner(
            ignores_draining, socket=relay.path, drain_timeout=0.2, on_event=events.append
        )
        with running(runner):
            eventually(lambda: lines(log) == ["start one"], what="first generation")
            relay.publish(cfg(tmp_path, "two"))
            eventually(lambda: runner.state is hotconf.RunnerState.STUCK, what="STUCK")
            assert [e.kind for e in events] == ["started", "stuck"]
            assert any(
                r.levelno == logging.CRITICAL and "STUCK" in r.getMessage() for r in caplog.records
            )
            assert lines(log) == ["start one"]  # never two generations at once
            (tmp_path / "release").touch()
            eventually(lambda: "start two" in lines(log), what="second generation")
        assert lines(log)[:3] == ["start one", "released one", "start two"]


def test_exit_on_stuck_ends_the_process_with_status_70(tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(
        "import hotconf, sys\n"
        "from hotconf_client_tasks import ignores_draining\n"
        "if __name__ == '__main__':\n"
        "    hotconf.run(ignores_draining, socket=sys.argv[1], drain_timeout=0.2,"
        " exit_on_stuck=True)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SUPPORT)}
    log = tmp_path / "log"
    with FakeRelay(tmp_path / "s.sock") as relay:
        relay.publish(cfg(tmp_path, "one"))
        app = subprocess.Popen(
            [sys.executable, str(script), str(relay.path)], env=env, stderr=subprocess.PIPE
        )
        try:
            eventually(lambda: lines(log) == ["start one"], what="first generation")
            relay.publish(cfg(tmp_path, "two"))
            _, err = app.communicate(timeout=30)
        finally:
            app.kill()
            app.wait()
    assert app.returncode == hotconf.EXIT_STUCK
    assert b"STUCK" in err and b"exit_on_stuck" in err


def test_coroutine_past_the_deadline_is_cancelled(tmp_path: Path) -> None:
    log = tmp_path / "log"
    with FakeRelay(tmp_path / "s.sock") as relay:
        relay.publish(cfg(tmp_path, "one"))
        runner = hotconf.AsyncRunner(aignores_draining, socket=relay.path, drain_timeout=0.2)
        with running(runner):
            eventually(lambda: lines(log) == ["start one"], what="first generation")
            [verdict] = relay.publish(cfg(tmp_path, "two"), wait=10)
            assert verdict.result == "ack"
            eventually(lambda: len(lines(log)) == 3, what="second start")
            assert lines(log) == ["start one", "cancelled one", "start two"]


def test_process_ignoring_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    log = tmp_path / "log"
    with FakeRelay(tmp_path / "s.sock") as relay:
        relay.publish(cfg(tmp_path, "one"))
        runner = hotconf.ProcessRunner(
            ignores_sigterm, socket=relay.path, drain_timeout=0.2, kill_grace=0.3
        )
        with running(runner):
            eventually(lambda: lines(log) == ["start one"], what="first generation")
            first_pid = int((tmp_path / "log").read_text().split()[2])
            [verdict] = relay.publish(cfg(tmp_path, "two"), wait=10)
            assert verdict.result == "ack"
            # The ACK goes out when the child begins; its first log line follows a moment later.
            eventually(lambda: lines(log) == ["start one", "start two"], what="second start")
            assert not Path(f"/proc/{first_pid}").exists()
