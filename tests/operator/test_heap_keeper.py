"""The operator's garbage-collector policy (``_gc.HeapKeeper``): the young generation's threshold
is raised; before kopf starts the heap is collected and frozen; later freezes run no collection
at all (no pause a change could wait on), happen once the operator has settled and never while
a rollout runs, and a full collection since the last freeze (the heap grew) brings another."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Iterator

import pytest

from hotconf_operator._gc import GEN0_THRESHOLD, HeapKeeper


@pytest.fixture(autouse=True)
def restore_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.enable()
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_thresholds_raise_only_the_young_generation() -> None:
    _, gen1, gen2 = gc.get_threshold()
    HeapKeeper(busy=lambda: False).apply_thresholds()
    assert gc.get_threshold() == (GEN0_THRESHOLD, gen1, gen2)


def test_refreeze_freezes_what_survives() -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    HeapKeeper(busy=lambda: False).refreeze()
    assert gc.get_freeze_count() > 1000  # at least the interpreter's and pytest's objects


def test_prepare_collects_then_freezes() -> None:
    gc.unfreeze()
    phases: list[tuple[str, int]] = []

    def seen(phase: str, info: dict[str, int]) -> None:
        phases.append((phase, info["generation"]))

    gc.callbacks.append(seen)
    try:
        HeapKeeper(busy=lambda: False).prepare()
    finally:
        gc.callbacks.remove(seen)
    assert ("start", 2) in phases
    assert gc.get_freeze_count() > 1000
    assert gc.get_threshold()[0] == GEN0_THRESHOLD


def test_a_refreeze_runs_no_collection() -> None:
    gc.disable()  # no automatic collection either: only what refreeze does is seen
    phases: list[str] = []
    gc.callbacks.append(lambda phase, info: phases.append(phase))
    try:
        before = gc.get_freeze_count()
        alive = [[i] for i in range(5000)]
        HeapKeeper(busy=lambda: False).refreeze()
        assert gc.get_freeze_count() >= before + len(alive)
    finally:
        gc.callbacks.pop()
    assert phases == []


async def _run_for(keeper: HeapKeeper, seconds: float) -> None:
    task = asyncio.create_task(keeper.run_forever())
    await asyncio.sleep(seconds)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_no_freeze_while_a_rollout_runs_then_one_when_idle() -> None:
    gc.unfreeze()
    busy = True
    keeper = HeapKeeper(busy=lambda: busy, settle=0.01, check=0.01)
    task = asyncio.create_task(keeper.run_forever())
    try:
        await asyncio.sleep(0.1)
        assert gc.get_freeze_count() == 0
        busy = False
        await asyncio.sleep(0.1)
        assert gc.get_freeze_count() > 0
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert keeper._on_collection not in gc.callbacks


async def test_a_full_collection_brings_another_freeze_after_the_spacing() -> None:
    gc.disable()  # only the collection below is a full one
    keeper = HeapKeeper(busy=lambda: False, settle=0.0, spacing=0.05, interval=3600, check=0.01)
    task = asyncio.create_task(keeper.run_forever())
    try:
        await asyncio.sleep(0.05)
        first = gc.get_freeze_count()
        assert first > 0
        garbage: list[list[int]] = [[] for _ in range(5000)]  # noqa: F841  # not yet frozen
        await asyncio.sleep(0.1)
        assert gc.get_freeze_count() < first + 5000  # no full collection yet: not frozen
        gc.collect()  # a full collection, as the collector runs when the heap grew
        await asyncio.sleep(0.1)
        assert gc.get_freeze_count() >= first + 5000
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
