"""The runner harness (`hotconf.testing.running`) fails a test whose asyncio task leaves tasks of
its own running after the runner stopped, naming them; a clean task passes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hotconf_client_tasks import eventually

import hotconf
from hotconf.testing import FakeRelay, running

_orphans: set[asyncio.Task[None]] = set()


async def leaves_a_task_behind(config: hotconf.Config, draining: asyncio.Event) -> None:
    orphan = asyncio.create_task(asyncio.sleep(3600), name="forgotten-poller")
    _orphans.add(orphan)
    await draining.wait()


async def tidy(config: hotconf.Config, draining: asyncio.Event) -> None:
    await draining.wait()


def run_once(tmp_path: Path, task: object) -> None:
    with FakeRelay(tmp_path / "s.sock") as relay:
        relay.publish({"k": "v"})
        runner = hotconf.AsyncRunner(task, socket=relay.path)  # type: ignore[arg-type]
        with running(runner):
            eventually(lambda: runner.revision is not None, what="first generation")
            [verdict] = relay.publish({"k": "w"}, wait=10)
            assert verdict.result == "ack"


def test_leftover_asyncio_task_fails_the_block(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="forgotten-poller"):
        run_once(tmp_path, leaves_a_task_behind)


def test_tidy_task_passes(tmp_path: Path) -> None:
    run_once(tmp_path, tidy)
