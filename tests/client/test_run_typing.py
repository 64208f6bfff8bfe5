"""The runner options are declared once (``hotconf.RunnerOptions``, a TypedDict) and mypy checks
them through ``hotconf.run`` and every runner's constructor: a misspelt option or a value of the
wrong type is a type error, the correct call type-checks; at run time an unknown option raises
TypeError naming the known ones, and the resolved defaults cover exactly the declared options."""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path

import mypy.api
import pytest

import hotconf
from hotconf._runners._base import _Options

CLIENT = Path(hotconf.__file__).parent.parent

GOOD = """\
import asyncio
import threading
from pathlib import Path

import hotconf


def task(config: hotconf.Config, draining: threading.Event) -> None: ...
async def atask(config: hotconf.Config, draining: asyncio.Event) -> None: ...
def validate(config: hotconf.Config) -> None: ...
def note(event: hotconf.ReloadEvent) -> None: ...


hotconf.run(
    task,
    mode="process",
    socket=Path("/run/hotconf/hotconf.sock"),
    configmap="default/app",
    validate=validate,
    drain_timeout=20,
    kill_grace=2.5,
    first_config_timeout=60.0,
    exit_on_stuck=True,
    on_event=note,
    name="worker",
)
options: hotconf.RunnerOptions = {"drain_timeout": 5.0, "name": "worker"}
hotconf.run(task, **options)
hotconf.ThreadRunner(task, socket="/tmp/s.sock", exit_on_stuck=False).run()
hotconf.ProcessRunner(task, kill_grace=1.0).run()
asyncio.run(hotconf.AsyncRunner(atask, drain_timeout=1.0).arun())
"""

# Each line that must be an error ends with "# error: <code> <word the message names>".
BAD = """\
import asyncio
import threading

import hotconf


def task(config: hotconf.Config, draining: threading.Event) -> None: ...
async def atask(config: hotconf.Config, draining: asyncio.Event) -> None: ...


hotconf.run(task, drain_timout=5.0)  # error: call-arg drain_timout
hotconf.run(task, mode="process", exit_on_stuck="yes")  # error: arg-type exit_on_stuck
hotconf.run(task, mode="threads")  # error: arg-type mode
hotconf.ThreadRunner(task, kil_grace=1.0)  # error: call-arg kil_grace
hotconf.ProcessRunner(task, drain_timeout="10")  # error: arg-type drain_timeout
hotconf.AsyncRunner(atask, on_events=print)  # error: call-arg on_events
options: hotconf.RunnerOptions = {"socket_path": "/tmp/s.sock"}  # error: typeddict-unknown-key socket_path
"""  # noqa: E501


@pytest.fixture(scope="module")
def mypy_output(tmp_path_factory: pytest.TempPathFactory) -> str:
    """mypy --strict on both snippets at once (one run: it analyses hotconf only once)."""
    root = tmp_path_factory.mktemp("typing")
    (root / "good.py").write_text(GOOD)
    (root / "bad.py").write_text(BAD)
    config = root / "mypy.ini"
    config.write_text(f"[mypy]\nstrict = True\nmypy_path = {CLIENT}\n")
    stdout, stderr, _ = mypy.api.run(
        [
            "--config-file",
            str(config),
            "--cache-dir",
            str(root / "cache"),
            "--no-error-summary",
            "--hide-error-context",
            str(root / "good.py"),
            str(root / "bad.py"),
        ]
    )
    assert not stderr, stderr
    return stdout


def test_a_correct_call_type_checks(mypy_output: str) -> None:
    assert [line for line in mypy_output.splitlines() if "good.py" in line] == []


def test_misspelt_options_and_wrong_types_are_type_errors(mypy_output: str) -> None:
    found: dict[int, list[tuple[str, str]]] = {}
    for line in mypy_output.splitlines():
        match = re.match(r".*bad\.py:(\d+): error: (.*)  \[([\w-]+)\]$", line)
        if match:
            found.setdefault(int(match[1]), []).append((match[3], match[2]))
    expected = {
        number: comment.split("# error: ")[1].split()
        for number, comment in enumerate(BAD.splitlines(), start=1)
        if "# error: " in comment
    }
    assert sorted(found) == sorted(expected), mypy_output
    for number, (code, word) in expected.items():
        assert any(c == code and word in message for c, message in found[number]), (
            number,
            found[number],
        )


def test_an_unknown_option_raises_at_run_time_naming_the_known_ones() -> None:
    with pytest.raises(TypeError, match=r"'drain_timout'.*drain_timeout, exit_on_stuck"):
        hotconf.ThreadRunner(print, drain_timout=5.0)  # type: ignore[call-arg]


def test_the_resolved_options_are_exactly_the_declared_ones() -> None:
    declared = typing.get_type_hints(hotconf.RunnerOptions)
    resolved = {f.name: f.type for f in dataclasses.fields(_Options)}
    assert set(resolved) == set(declared)
    assert typing.get_type_hints(_Options) == declared
    assert hotconf.RunnerOptions.__required_keys__ == frozenset()
