"""A blocking runner builds exactly one generation per run of the task: N revisions applied one
after the other build N generations, in thread mode (the next one chained to the draining thread)
and in process mode (where each generation holds an Event, a Pipe and, once started, a child)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hotconf_client_tasks import TASKS, eventually, lines, make_runner

import hotconf
from hotconf._runners._blocking import Generation
from hotconf.testing import FakeRelay, running

RUNS = 3


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_n_revisions_build_n_generations(
    tmp_path: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[Generation] = []
    original = Generation.__init__

    def counting_init(self: Generation, *args: Any, **kwargs: Any) -> None:
        built.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(Generation, "__init__", counting_init)
    log = tmp_path / "log"
    events: list[hotconf.ReloadEvent] = []

    def cfg(value: str) -> dict[str, str]:
        return {"log": str(log), "value": value}

    with FakeRelay(tmp_path / "s.sock") as relay:
        relay.publish(cfg("0"))
        runner = make_runner(
            mode, TASKS["cooperative"][mode], socket=relay.path, on_event=events.append
        )
        with running(runner):
            eventually(lambda: lines(log) == ["start 0"], what="first generation")
            for run in range(1, RUNS):
                [verdict] = relay.publish(cfg(str(run)), wait=10)
                assert verdict.result == "ack"
            eventually(lambda: len(lines(log)) == 2 * RUNS - 1, what=f"{RUNS} runs")
    assert [e.kind for e in events] == ["started"] + ["reloaded"] * (RUNS - 1) + ["stopped"]
    assert len(built) == RUNS, f"{len(built)} generations built for {RUNS} runs"
