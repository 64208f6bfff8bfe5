"""A task that returns while not draining, or raises, is logged and reported (exited / failed
events, IDLE state) and not restarted in a loop; the next new revision starts it again."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hotconf_client_tasks import TASKS, eventually, lines, make_runner

import hotconf
from hotconf.testing import FakeRelay, running


@pytest.mark.parametrize("mode", ["thread", "process", "asyncio"])
@pytest.mark.parametrize("how", ["returns", "raises"])
def test_task_that_ends_waits_for_the_next_revision(tmp_path: Path, mode: str, how: str) -> None:
    events: list[hotconf.ReloadEvent] = []
    log = tmp_path / "log"
    with FakeRelay(tmp_path / "s.sock") as relay:
        relay.publish({"log": str(log), "value": "one"})
        runner = make_runner(mode, TASKS[how][mode], socket=relay.path, on_event=events.append)
        with running(runner):
            eventually(lambda: runner.state is hotconf.RunnerState.IDLE, what="IDLE")
            time.sleep(0.3)  # room for a (wrong) restart loop to show itself
            assert lines(log) == ["start one"]
            [verdict] = relay.publish({"log": str(log), "value": "two"}, wait=10)
            assert verdict.result == "ack"
            eventually(lambda: lines(log) == ["start one", "start two"], what="restart")
            eventually(lambda: len(events) == 4, what="the second end reported")
    kinds = [e.kind for e in events]
    expected = "exited" if how == "returns" else "failed"
    assert kinds[:4] == ["started", expected, "reloaded", expected]
    if how == "raises":
        assert events[1].message == "RuntimeError: task blew up"
