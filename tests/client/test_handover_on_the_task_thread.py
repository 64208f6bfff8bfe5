"""Thread mode's direct hand-over: when the relay connection's thread began a drain and the
supervisor only waits, the task thread whose old run returned adopts the generation it has just
started and ACKs it itself, so the supervisor does not wake per config. These tests prove that
the guarantees hold across that hand-over: the ACK goes out only after the old run returned and
once per revision (none for a superseded one), a NACK leaves the running task alone, a newer
revision or a stop during the drain is handled by the supervisor, a new generation that raises
at once goes IDLE, a reconnect re-ACKs without a restart, and the drain deadline still holds."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hotconf_client_tasks import eventually, lines, record

import hotconf
from hotconf._runners._thread import ThreadRunner
from hotconf.testing import FakeRelay, running, snapshot
from hotconf_wire.protocol import Ack, Nack


def task(config: hotconf.Config, draining: threading.Event) -> None:
    """Cooperative, unless the config says ``raise`` (raises at once) or ``ignore`` (ignores
    ``draining`` until the ``release`` file exists)."""
    record(config, "start")
    if config.data.get("raise") == "yes":
        raise RuntimeError("task blew up at start")
    if config.data.get("ignore") == "yes":
        release = Path(config.data["release"])
        while not release.exists():
            time.sleep(0.02)
        record(config, "released")
        return
    draining.wait()
    time.sleep(float(config.data.get("drain_delay", "0")))
    record(config, "stop")


class Spy:
    """What a runner sends to the relay and which thread sent it; the events it reports."""

    def __init__(self, runner: ThreadRunner, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sent: list[tuple[Ack | Nack, str]] = []
        self.events: list[tuple[hotconf.ReloadEvent, str]] = []
        send = runner._send

        def spying_send(message: Ack | Nack) -> None:
            self.sent.append((message, threading.current_thread().name))
            send(message)

        monkeypatch.setattr(runner, "_send", spying_send)

    def on_event(self, event: hotconf.ReloadEvent) -> None:
        self.events.append((event, threading.current_thread().name))

    def verdicts(self) -> list[tuple[str, str]]:
        """(kind, value of the config) for every ACK/NACK sent, in order."""
        return [(type(m).__name__, m.revision) for m, _ in self.sent]

    def kinds(self) -> list[str]:
        return [event.kind for event, _ in self.events]


def make(
    tmp_path: Path, relay: FakeRelay, monkeypatch: pytest.MonkeyPatch, **options: Any
) -> tuple[ThreadRunner, Spy]:
    holder: list[Spy] = []
    runner = ThreadRunner(
        task, socket=relay.path, on_event=lambda e: holder[0].on_event(e), **options
    )
    spy = Spy(runner, monkeypatch)
    holder.append(spy)
    return runner, spy


def cfg(tmp_path: Path, value: str, **extra: str) -> dict[str, str]:
    return {"log": str(tmp_path / "log"), "value": value, **extra}


def revision(tmp_path: Path, value: str, **extra: str) -> str:
    return snapshot(cfg(tmp_path, value, **extra)).revision


def supervisor_waits(runner: ThreadRunner) -> None:
    """Until the supervisor only waits with the task running: the next arrival goes direct."""
    eventually(
        lambda: runner._waiting and runner.state is hotconf.RunnerState.RUNNING,
        what="the supervisor waiting with the task running",
    )


def test_the_task_thread_acks_the_new_generation_after_the_old_run_returned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "log"
    with FakeRelay(tmp_path / "s.sock") as relay:
        relay.publish(cfg(tmp_path, "0", drain_delay="0.2"))
        runner, spy = make(tmp_path, relay, monkeypatch)
        with running(runner):
            eventually(lambda: lines(log) == ["start 0"], what="first generation")
            for n in range(1, 4):
                supervisor_waits(runner)
                [verdict] = relay.publish(cfg(tmp_path, str(n), drain_delay="0.2"), wait=10)
                assert verdict.result == "ack"
                # The ACK came only after the old run had returned (it takes 0.2 s to).
                assert f"stop {n - 1}" in lines(log)
                assert runner.revision == revision(tmp_path, str(n), drain_delay="0.2")
                assert runner.state is hotconf.RunnerState.RUNNING
            eventually(lambda: lines(log)[-1:] == ["start 3"], what="fourth generation")
    acks = [(type(message).__name__, thread) for message, thread in spy.sent]
    assert [kind for kind, _ in acks] == ["Ack"] * 4, spy.sent
    assert len({m.revision for m, _ in spy.sent}) == 4  # one ACK per revision
    # The first start is the supervisor's; each switch-over is the task thread's own.
    assert not acks[0][1].startswith("hotconf-task-")
    assert all(thread.startswith("hotconf-task-") for _, thread in acks[1:]), acks
    assert spy.kinds() == ["started", "reloaded", "reloaded", "reloaded", "stopped"]
    reloaded = [thread for event, thread in spy.events if event.kind == "reloaded"]
    assert all(thread.startswith("hotconf-task-") for thread in reloaded), reloaded


def test_a_newer_revision_during_the_drain_supersedes_the_chained_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "log"
    with FakeRelay(tmp_path / "s.sock") as relay:
        relay.publish(cfg(tmp_path, "one", drain_delay="0.5"))
        runner, spy = make(tmp_path, relay, monkeypatch)
        with running(runner):
            eventually(lambda: lines(log) == ["start one"], what="first generation")
            supervisor_waits(runner)
            relay.publish(cfg(tmp_path, "two"))  # goes direct: chained, draining set
            eventually(lambda: runner.state is hotconf.RunnerState.DRAINING, what="DRAINING")
            [verdict] = relay.publish(cfg(tmp_path, "three"), wait=10)
            assert verdict.result == "ack"
            eventually(lambda: lines(log)[-1:] == ["start three"], what="third generation")
            supervisor_waits(runner)
            [verdict] = relay.publish(cfg(tmp_path, "four"), wait=10)
            assert verdict.result == "ack"
            eventually(lambda: lines(log)[-1:] == ["start four"], what="fourth generation")
    assert lines(log) == [
        "start one",
        "stop one",
        "start three",
        "stop three",
        "start four",
        "stop four",
    ]
    assert spy.verdicts() == [
        ("Ack", revision(tmp_path, "one", drain_delay="0.5")),
        ("Ack", revision(tmp_path, "three")),
        ("Ack", revision(tmp_path, "four")),
    ]  # nothing for "two": superseded
    assert spy.kinds() == ["started", "reloaded", "reloaded", "stopped"]


def test_a_nack_on_the_direct_path_and_during_the_drain_leaves_the_task_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "log"

    def validate(config: hotconf.Config) -> None:
        if config.data["value"].startswith("bad"):
            raise ValueError("bad value")

    with FakeRelay(tmp_path / "s.sock") as relay:
        relay.publish(cfg(tmp_path, "one", drain_delay="0.5"))
        runner, spy = make(tmp_path, relay, monkeypatch, validate=validate)
        with running(runner):
            eventually(lambda: lines(log) == ["start one"], what="first generation")
            supervisor_waits(runner)
            [verdict] = relay.publish(cfg(tmp_path, "bad1"), wait=10)  # the connection thread's
            assert (verdict.result, verdict.message) == ("nack", "ValueError: bad value")
            assert runner.state is hotconf.RunnerState.RUNNING
            supervisor_waits(runner)
            relay.publish(cfg(tmp_path, "two"))
            eventually(lambda: runner.state is hotconf.RunnerState.DRAINING, what="DRAINING")
            [verdict] = relay.publish(cfg(tmp_path, "bad2"), wait=10)  # the supervisor's
            assert verdict.result == "nack"
            eventually(lambda: lines(log)[-1:] == ["start two"], what="second generation")
            eventually(lambda: runner.state is hotconf.RunnerState.RUNNING, what="RUNNING")
            supervisor_waits(runner)
            [verdict] = relay.publish(cfg(tmp_path, "three"), wait=10)
            assert verdict.result == "ack"
            eventually(lambda: lines(log)[-1:] == ["start three"], what="third generation")
    assert lines(log) == [
        "start one",
        "stop one",
        "start two",
        "stop two",
        "start three",
        "stop three",
    ]
    assert spy.verdicts() == [
        ("Ack", revision(tmp_path, "one", drain_delay="0.5")),
        ("Nack", revision(tmp_path, "bad1")),
        ("Nack", revision(tmp_path, "bad2")),
        ("Ack", revision(tmp_path, "two")),
        ("Ack", revision(tmp_path, "three")),
    ]
    assert spy.kinds() == ["started", "rejected", "rejected", "reloaded", "reloaded", "stopped"]


def test_a_stop_during_the_hand_over_drains_the_new_generation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "log"
    closer: list[threading.Thread] = []
    with FakeRelay(tmp_path / "s.sock") as relay:
        relay.publish(cfg(tmp_path, "one"))
        runner, spy = make(tmp_path, relay, monkeypatch, drain_timeout=1)
        on_event = spy.on_event

        def stop_while_handing_over(event: hotconf.ReloadEvent) -> None:
            on_event(event)
            if event.kind == "reloaded":  # on the task thread, in the middle of the hand-over
                closer.append(threading.Thread(target=runner.close))
                closer[0].start()
                time.sleep(0.2)  # the Stop reaches the supervisor, which must wait its turn

        monkeypatch.setattr(spy, "on_event", stop_while_handing_over)
        with running(runner):
            eventually(lambda: lines(log) == ["start one"], what="first generation")
            supervisor_waits(runner)
            relay.publish(cfg(tmp_path, "two"))
            eventually(lambda: runner.state is hotconf.RunnerState.STOPPED, what="STOPPED")
        closer[0].join(10)
    assert lines(log) == ["start one", "stop one", "start two", "stop two"]
    assert spy.verdicts() == [
        ("Ack", revision(tmp_path, "one")),
        ("Ack", revision(tmp_path, "two")),
    ]
    assert spy.kinds() == ["started", "reloaded", "stopped"]


def test_a_new_generation_that_raises_at_once_goes_idle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "log"
    with FakeRelay(tmp_path / "s.sock") as relay:
        relay.publish(cfg(tmp_path, "one"))
        runner, spy = make(tmp_path, relay, monkeypatch)
        with running(runner):
            eventually(lambda: lines(log) == ["start one"], what="first generation")
            supervisor_waits(runner)
            [verdict] = relay.publish(cfg(tmp_path, "two", **{"raise": "yes"}), wait=10)
            assert verdict.result == "ack"  # it started; then it failed on its own
            eventually(lambda: runner.state is hotconf.RunnerState.IDLE, what="IDLE")
            [verdict] = relay.publish(cfg(tmp_path, "three"), wait=10)
            assert verdict.result == "ack"
            eventually(lambda: lines(log)[-1:] == ["start three"], what="third generation")
            eventually(lambda: runner.state is hotconf.RunnerState.RUNNING, what="RUNNING")
    assert lines(log) == ["start one", "stop one", "start two", "start three", "stop three"]
    assert spy.kinds() == ["started", "reloaded", "failed", "reloaded", "stopped"]
    failed = next(event for event, _ in spy.events if event.kind == "failed")
    assert failed.message == "RuntimeError: task blew up at start"
    assert failed.revision == revision(tmp_path, "two", **{"raise": "yes"})


def test_a_reconnect_after_a_hand_over_re_acks_without_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "log"
    with FakeRelay(tmp_path / "s.sock") as relay:
        relay.publish(cfg(tmp_path, "one"))
        runner, spy = make(tmp_path, relay, monkeypatch)
        with running(runner):
            eventually(lambda: lines(log) == ["start one"], what="first generation")
            supervisor_waits(runner)
            [verdict] = relay.publish(cfg(tmp_path, "two"), wait=10)
            assert verdict.result == "ack"
            relay.stop()
            relay.start()  # resends "two", the revision running
            two = revision(tmp_path, "two")
            eventually(
                lambda: spy.verdicts()[-2:] == [("Ack", two), ("Ack", two)], what="the re-ACK"
            )
            time.sleep(0.2)  # a wrong restart would show in the log by now
            assert lines(log) == ["start one", "stop one", "start two"]
    assert spy.kinds() == ["started", "reloaded", "stopped"]


def test_the_drain_deadline_holds_after_hand_overs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "log"
    release = tmp_path / "release"
    with FakeRelay(tmp_path / "s.sock") as relay:
        relay.publish(cfg(tmp_path, "one"))
        runner, spy = make(tmp_path, relay, monkeypatch, drain_timeout=0.5)
        with running(runner):
            eventually(lambda: lines(log) == ["start one"], what="first generation")
            supervisor_waits(runner)
            stubborn = cfg(tmp_path, "two", ignore="yes", release=str(release))
            [verdict] = relay.publish(stubborn, wait=10)  # handed over by the task thread
            assert verdict.result == "ack"
            supervisor_waits(runner)
            began = time.monotonic()
            relay.publish(cfg(tmp_path, "three"))  # "two" ignores the drain the connection began
            eventually(lambda: runner.state is hotconf.RunnerState.STUCK, what="STUCK")
            assert time.monotonic() - began >= 0.5  # not before the deadline
            release.touch()
            eventually(lambda: lines(log)[-1:] == ["start three"], what="third generation")
            eventually(lambda: runner.state is hotconf.RunnerState.RUNNING, what="RUNNING")
    assert lines(log) == [
        "start one",
        "stop one",
        "start two",
        "released two",
        "start three",
        "stop three",
    ]
    assert spy.kinds() == ["started", "reloaded", "stuck", "reloaded", "stopped"]


def test_validate_and_on_event_stay_serialized_across_the_hand_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "log"
    busy = threading.Lock()
    overlaps: list[str] = []  # noted, not asserted in the callbacks: the runner swallows those
    handing_over = threading.Event()

    def turn(what: str, hold: float) -> None:
        if not busy.acquire(blocking=False):
            overlaps.append(what)
            return
        try:
            if what == "reloaded two":
                handing_over.set()
            time.sleep(hold)
        finally:
            busy.release()

    def validate(config: hotconf.Config) -> None:
        turn("validate " + config.data["value"], 0.01)

    with FakeRelay(tmp_path / "s.sock") as relay:
        relay.publish(cfg(tmp_path, "one"))
        runner, spy = make(tmp_path, relay, monkeypatch, validate=validate)
        on_event = spy.on_event

        def slow_on_event(event: hotconf.ReloadEvent) -> None:
            on_event(event)
            value = "two" if event.revision == revision(tmp_path, "two") else ""
            turn(f"{event.kind} {value}".strip(), 0.3 if value else 0.01)

        monkeypatch.setattr(spy, "on_event", slow_on_event)
        with running(runner):
            eventually(lambda: lines(log) == ["start one"], what="first generation")
            supervisor_waits(runner)
            relay.publish(cfg(tmp_path, "two"))
            assert handing_over.wait(10), "no hand-over"
            # The task thread is in the middle of the hand-over (on_event holds it for 0.3 s):
            # the connection thread must wait its turn before validating "three".
            [verdict] = relay.publish(cfg(tmp_path, "three"), wait=10)
            assert verdict.result == "ack"
            eventually(lambda: lines(log)[-1:] == ["start three"], what="third generation")
    assert overlaps == [], f"validate/on_event called while another call ran: {overlaps}"
    assert spy.verdicts() == [
        ("Ack", revision(tmp_path, "one")),
        ("Ack", revision(tmp_path, "two")),
        ("Ack", revision(tmp_path, "three")),
    ]
    assert next(thread for e, thread in spy.events if e.kind == "reloaded").startswith(
        "hotconf-task-"
    )


@pytest.mark.timeout(30)  # a deadlock shows as this timeout
@pytest.mark.parametrize("where", ["on_event", "validate"])
def test_close_from_a_callback_on_the_task_or_connection_thread_stops_the_runner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    log = tmp_path / "log"
    holder: list[ThreadRunner] = []

    def validate(config: hotconf.Config) -> None:
        if where == "validate" and config.data["value"] == "two":  # the connection thread's
            holder[0].close()

    with FakeRelay(tmp_path / "s.sock") as relay:
        relay.publish(cfg(tmp_path, "one"))
        runner, spy = make(tmp_path, relay, monkeypatch, validate=validate)
        holder.append(runner)
        on_event = spy.on_event

        def close_on_reload(event: hotconf.ReloadEvent) -> None:
            on_event(event)
            if where == "on_event" and event.kind == "reloaded":  # the task thread's
                runner.close()

        monkeypatch.setattr(spy, "on_event", close_on_reload)
        with running(runner):
            eventually(lambda: lines(log) == ["start one"], what="first generation")
            supervisor_waits(runner)
            relay.publish(cfg(tmp_path, "two"))
            eventually(lambda: runner.state is hotconf.RunnerState.STOPPED, what="STOPPED")
    two = revision(tmp_path, "two")
    if where == "on_event" or "start two" in lines(log):
        # The stop came during the hand-over (or, from validate, lost the race to it): the new
        # generation ran, was ACKed, and was drained before run() returned.
        assert lines(log) == ["start one", "stop one", "start two", "stop two"]
        assert spy.kinds() == ["started", "reloaded", "stopped"]
        assert ("Ack", two) in spy.verdicts()
    else:  # the stop was handled before the old run returned: "two" never started
        assert lines(log) == ["start one", "stop one"]
        assert spy.kinds() == ["started", "stopped"]
        assert ("Ack", two) not in spy.verdicts()
