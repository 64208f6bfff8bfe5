"""A new revision drains the running task and starts the next generation on it, in every mode:
the old generation sees `draining` and returns before the new one starts (never two at once),
the revision is ACKed once the new generation runs, a revision that validate() rejects is NACKed
with its message while the running task is untouched, and a burst of 100 updates during a drain
causes one restart, on the newest."""

from __future__ import annotations

from pathlib import Path

import pytest
from hotconf_client_tasks import TASKS, eventually, lines, make_runner

import hotconf
from hotconf.testing import FakeRelay, running

MODES = ["thread", "process", "asyncio"]


def cfg(tmp_path: Path, value: str, **extra: str) -> dict[str, str]:
    return {"log": str(tmp_path / "log"), "value": value, **extra}


@pytest.mark.parametrize("mode", MODES)
def test_new_revision_drains_then_restarts_and_acks(tmp_path: Path, mode: str) -> None:
    events: list[hotconf.ReloadEvent] = []
    log = tmp_path / "log"
    with FakeRelay(tmp_path / "s.sock") as relay:
        relay.publish(cfg(tmp_path, "one", drain_delay="0.2"))
        runner = make_runner(
            mode, TASKS["cooperative"][mode], socket=relay.path, on_event=events.append
        )
        with running(runner):
            eventually(lambda: lines(log) == ["start one"], what="first generation")
            eventually(lambda: runner.state is hotconf.RunnerState.RUNNING, what="RUNNING")
            [verdict] = relay.publish(cfg(tmp_path, "two"), wait=10)
            assert verdict.result == "ack"
            # The ACK came only after the old generation returned and the new one began (its
            # first log line may follow the ACK by a moment).
            eventually(lambda: len(lines(log)) == 3, what="second start")
            assert lines(log) == ["start one", "stop one", "start two"]
            assert runner.revision == verdict.revision
        assert lines(log) == ["start one", "stop one", "start two", "stop two"]
    assert runner.state.value == "stopped"
    assert [e.kind for e in events] == ["started", "reloaded", "stopped"]
    assert events[1].previous == events[0].revision


@pytest.mark.parametrize("mode", MODES)
def test_rejected_revision_is_nacked_and_the_task_is_untouched(tmp_path: Path, mode: str) -> None:
    def validate(config: hotconf.Config) -> None:
        if config.data["value"] == "bad":
            raise hotconf.ConfigRejected("value must not be 'bad'")

    log = tmp_path / "log"
    with FakeRelay(tmp_path / "s.sock") as relay:
        relay.publish(cfg(tmp_path, "good"))
        runner = make_runner(mode, TASKS["cooperative"][mode], socket=relay.path, validate=validate)
        with running(runner):
            eventually(lambda: lines(log) == ["start good"], what="first generation")
            [nack] = relay.publish(cfg(tmp_path, "bad"), wait=10)
            assert nack.result == "nack"
            assert nack.message == "value must not be 'bad'"
            [parse] = relay.publish(cfg(tmp_path, "x", **{"broken.yaml": "a: ["}), wait=10)
            assert parse.result == "nack"
            assert "broken.yaml:1: invalid YAML" in parse.message
            assert lines(log) == ["start good"]
            assert runner.state is hotconf.RunnerState.RUNNING
            [ack] = relay.publish(cfg(tmp_path, "better"), wait=10)
            assert ack.result == "ack"
        assert lines(log) == ["start good", "stop good", "start better", "stop better"]


@pytest.mark.parametrize("mode", MODES)
def test_a_burst_of_updates_causes_one_restart_on_the_newest(tmp_path: Path, mode: str) -> None:
    log = tmp_path / "log"
    with FakeRelay(tmp_path / "s.sock") as relay:
        relay.publish(cfg(tmp_path, "0", drain_delay="1.0"))
        runner = make_runner(mode, TASKS["cooperative"][mode], socket=relay.path)
        with running(runner):
            eventually(lambda: lines(log) == ["start 0"], what="first generation")
            for i in range(1, 100):
                relay.publish(cfg(tmp_path, str(i), drain_delay="1.0"))
            [verdict] = relay.publish(cfg(tmp_path, "100"), wait=20)
            assert verdict.result == "ack"
            eventually(lambda: len(lines(log)) == 3, what="second start")
            assert lines(log) == ["start 0", "stop 0", "start 100"]
        assert lines(log) == ["start 0", "stop 0", "start 100", "stop 100"]
