"""Switch-over edge cases: a new generation that ends at once is noticed (IDLE, and the next
revision starts it again), and a stop that arrives while the old generation drains starts
nothing new. Thread mode hands the next generation to the draining thread before it returns
(``_ThreadGeneration.chain``), so both cases cross the hand-over there; and its relay
connection's thread begins a switch-over itself when the supervisor only waits (one wake-up
fewer per config), which the last test pins down: validation and events stay serialized."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from hotconf_client_tasks import TASKS, eventually, lines, make_runner

import hotconf
from hotconf.testing import FakeRelay, running


def cfg(tmp_path: Path, value: str, **extra: str) -> dict[str, str]:
    return {"log": str(tmp_path / "log"), "value": value, **extra}


@pytest.mark.parametrize("mode", ["thread", "process", "asyncio"])
def test_a_new_generation_that_ends_at_once_goes_idle_and_restarts_later(
    tmp_path: Path, mode: str
) -> None:
    log = tmp_path / "log"
    events: list[hotconf.ReloadEvent] = []
    with FakeRelay(tmp_path / "s.sock") as relay:
        relay.publish(cfg(tmp_path, "one"))
        task = TASKS["returns_if_told"][mode]
        runner = make_runner(mode, task, socket=relay.path, on_event=events.append, drain_timeout=5)
        with running(runner):
            eventually(lambda: lines(log) == ["start one"], what="first generation")
            [verdict] = relay.publish(cfg(tmp_path, "two", returns="yes"), wait=10)
            assert verdict.result == "ack"
            eventually(lambda: runner.state is hotconf.RunnerState.IDLE, what="IDLE")
            [verdict] = relay.publish(cfg(tmp_path, "three"), wait=10)
            assert verdict.result == "ack"
            eventually(lambda: lines(log)[-1:] == ["start three"], what="third generation")
            eventually(lambda: runner.state is hotconf.RunnerState.RUNNING, what="RUNNING")
    assert [e.kind for e in events][:4] == ["started", "reloaded", "exited", "reloaded"]
    assert lines(log) == ["start one", "stop one", "start two", "start three", "stop three"]


@pytest.mark.parametrize("mode", ["thread", "process"])  # close() is a blocking runner's
def test_a_stop_during_the_drain_starts_nothing_new(tmp_path: Path, mode: str) -> None:
    log = tmp_path / "log"
    with FakeRelay(tmp_path / "s.sock") as relay:
        relay.publish(cfg(tmp_path, "one", drain_delay="0.5"))
        runner = make_runner(mode, TASKS["cooperative"][mode], socket=relay.path)
        with running(runner):
            eventually(lambda: lines(log) == ["start one"], what="first generation")
            relay.publish(cfg(tmp_path, "two"))
            eventually(lambda: runner.state is hotconf.RunnerState.DRAINING, what="DRAINING")
            runner.close()
    assert lines(log) == ["start one", "stop one"]
    assert runner.state is hotconf.RunnerState.STOPPED


def test_thread_mode_begins_the_switch_over_on_the_connection_thread(tmp_path: Path) -> None:
    log = tmp_path / "log"
    calls: list[tuple[str, str]] = []  # (what, thread name)
    overlaps: list[str] = []  # calls made while another one ran
    busy = threading.Lock()

    def note(what: str) -> None:
        # Noted, not asserted: the runner logs and swallows what on_event raises (and turns
        # what validate raises into a NACK), so an assertion here could not fail the test.
        if not busy.acquire(blocking=False):
            overlaps.append(what)
            return
        try:
            calls.append((what, threading.current_thread().name))
            time.sleep(0.01)  # long enough that a call from another thread would overlap
        finally:
            busy.release()

    with FakeRelay(tmp_path / "s.sock") as relay:
        relay.publish(cfg(tmp_path, "one"))
        runner = make_runner(
            "thread",
            TASKS["cooperative"]["thread"],
            socket=relay.path,
            validate=lambda config: note("validate " + config.data["value"]),
            on_event=lambda event: note(event.kind),
        )
        with running(runner):
            eventually(lambda: lines(log) == ["start one"], what="first generation")
            eventually(lambda: runner.state is hotconf.RunnerState.RUNNING, what="RUNNING")
            # The supervisor is done with the first run's callbacks (each holds its turn for
            # 10 ms): the switch-over is then the connection thread's to begin.
            eventually(
                lambda: any(what == "started" for what, _ in calls) and not busy.locked(),
                what="the started event handled",
            )
            [verdict] = relay.publish(cfg(tmp_path, "two"), wait=10)
            assert verdict.result == "ack"
            eventually(lambda: lines(log)[-1:] == ["start two"], what="second generation")
    assert overlaps == [], f"validate/on_event called while another call ran: {overlaps}"
    validations = [thread for what, thread in calls if what.startswith("validate")]
    assert validations[0] != "hotconf-connection"  # the first config: the supervisor
    assert validations[1] == "hotconf-connection"  # the switch-over: the connection thread
    kinds = [what for what, _ in calls]
    assert kinds[:4] == ["validate one", "started", "validate two", "reloaded"]
