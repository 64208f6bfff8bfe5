"""At start a runner waits for the first config up to first_config_timeout, then raises
FirstConfigTimeout naming the socket and why (no relay, or a relay with no config)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hotconf_client_tasks import TASKS, eventually, make_runner

import hotconf
from hotconf.testing import FakeRelay, running


def stopped(runner: hotconf.ThreadRunner) -> None:
    eventually(lambda: runner.state is hotconf.RunnerState.STOPPED, what="the runner gave up")


@pytest.mark.parametrize("mode", ["thread", "process", "asyncio"])
def test_no_relay_times_out_naming_the_socket(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "nobody.sock"
    runner = make_runner(mode, TASKS["cooperative"][mode], socket=path, first_config_timeout=0.3)
    with pytest.raises(hotconf.FirstConfigTimeout) as info, running(runner):
        stopped(runner)
    message = str(info.value)
    assert str(path) in message
    assert "no relay answered" in message
    assert "hotconf dev" in message
    assert runner.state is hotconf.RunnerState.STOPPED


def test_relay_without_config_times_out_saying_so(tmp_path: Path) -> None:
    with FakeRelay(tmp_path / "s.sock") as relay:
        runner = hotconf.ThreadRunner(
            TASKS["cooperative"]["thread"],
            socket=relay.path,
            configmap="default/app",
            first_config_timeout=0.5,
        )
        with pytest.raises(hotconf.FirstConfigTimeout, match="sent no config for ConfigMap"):
            with running(runner):
                stopped(runner)


def test_env_var_names_the_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTCONF_SOCKET", str(tmp_path / "env.sock"))
    runner = hotconf.ThreadRunner(TASKS["cooperative"]["thread"], first_config_timeout=0.1)
    with pytest.raises(hotconf.FirstConfigTimeout, match=r"env\.sock"), running(runner):
        stopped(runner)


def test_a_runner_runs_once(tmp_path: Path) -> None:
    runner = hotconf.ThreadRunner(TASKS["cooperative"]["thread"], socket=tmp_path / "x.sock")
    runner.close()
    with pytest.raises(hotconf.RunnerError, match="a runner runs once"):
        runner.run()
