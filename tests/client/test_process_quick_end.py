"""Process mode ends a generation on the child's word once its task returned with nothing left
to run, and waits for the process otherwise: a task that returns while a non-daemon thread of it
still runs keeps its process (that thread finishes its work) and the next generation starts
only after that process is gone, so two generations never run at once; a task that returns
with nothing left is counted ended at once, and every one of those processes is reaped by the
time the runner returns (no zombie, no leaked process)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hotconf_client_tasks import cooperative, eventually, leaves_a_thread, lines

import hotconf
from hotconf.testing import FakeRelay, running

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def test_a_thread_left_behind_keeps_the_next_generation_waiting(tmp_path: Path) -> None:
    log = tmp_path / "log"
    with FakeRelay(tmp_path / "relay.sock") as relay:
        relay.publish({"log": str(log), "value": "one", "drain_delay": "0.3"})
        runner = hotconf.ProcessRunner(leaves_a_thread, socket=relay.path)
        with running(runner):
            eventually(lambda: lines(log) == ["start one"], what="one started")
            [verdict] = relay.publish({"log": str(log), "value": "two"}, wait=10)
            assert verdict.result == "ack"
            eventually(lambda: "start two" in lines(log), what="two started")
    # The old process finished its thread (its exit waited for it) before the new one started.
    assert lines(log)[:4] == ["start one", "stop one", "thread one", "start two"], lines(log)


def test_processes_that_said_returned_are_all_reaped(tmp_path: Path) -> None:
    log = tmp_path / "log"
    with FakeRelay(tmp_path / "relay.sock") as relay:
        relay.publish({"log": str(log), "value": "0"})
        runner = hotconf.ProcessRunner(cooperative, socket=relay.path)
        with running(runner):
            eventually(lambda: lines(log) == ["start 0"], what="0 started")
            for value in ("1", "2", "3"):
                [verdict] = relay.publish({"log": str(log), "value": value}, wait=10)
                assert verdict.result == "ack"
        pids = [int(line.split()[2]) for line in log.read_text().splitlines()]
    assert [" ".join(line.split()[:2]) for line in log.read_text().splitlines()] == [
        "start 0", "stop 0", "start 1", "stop 1", "start 2", "stop 2", "start 3", "stop 3",
    ]  # fmt: skip
    for pid in set(pids):  # gone, and reaped: no /proc entry, not even a zombie
        assert not os.path.exists(f"/proc/{pid}"), pid
