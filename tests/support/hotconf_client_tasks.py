"""Tasks for the client runner tests, importable by child processes (process mode pickles them).

Each task reads its instructions from the config it runs on: ``log`` (a file it appends
``start <value> <pid>`` and ``stop <value>`` lines to), ``value``, ``drain_delay`` (seconds it
takes to return once draining), and ``release`` (a file whose existence lets a stuck task end).
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hotconf import Config


def record(config: Config, word: str) -> None:
    with open(config.data["log"], "a") as f:
        f.write(f"{word} {config.data.get('value', '')} {os.getpid()}\n")


def cooperative(config: Config, draining: Any) -> None:
    record(config, "start")
    draining.wait()
    time.sleep(float(config.data.get("drain_delay", "0")))
    record(config, "stop")


def ignores_draining(config: Config, draining: Any) -> None:
    """Never looks at draining; ends only when the ``release`` file exists."""
    record(config, "start")
    release = Path(config.data["release"])
    while not release.exists():
        time.sleep(0.02)
    record(config, "released")


def ignores_sigterm(config: Config, draining: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    record(config, "start")
    while True:
        time.sleep(0.05)


def leaves_a_thread(config: Config, draining: Any) -> None:
    """Like :func:`cooperative`, but on draining starts a non-daemon thread that logs
    ``thread <value>`` ``drain_delay`` seconds later, and returns at once: the process is not
    done until that thread is."""
    record(config, "start")
    draining.wait()

    def later() -> None:
        time.sleep(float(config.data.get("drain_delay", "0.3")))
        record(config, "thread")

    threading.Thread(target=later, daemon=False).start()
    record(config, "stop")


def returns_at_once(config: Config, draining: Any) -> None:
    record(config, "start")


def returns_if_told(config: Config, draining: Any) -> None:
    """Returns at once on a config with ``returns: "yes"``, else like :func:`cooperative`."""
    if config.data.get("returns") == "yes":
        record(config, "start")
        return
    cooperative(config, draining)


def raises(config: Config, draining: Any) -> None:
    record(config, "start")
    raise RuntimeError("task blew up")


async def acooperative(config: Config, draining: asyncio.Event) -> None:
    record(config, "start")
    await draining.wait()
    await asyncio.sleep(float(config.data.get("drain_delay", "0")))
    record(config, "stop")


async def aignores_draining(config: Config, draining: asyncio.Event) -> None:
    record(config, "start")
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            record(config, "cancelled")
            raise


async def areturns_at_once(config: Config, draining: asyncio.Event) -> None:
    record(config, "start")


async def areturns_if_told(config: Config, draining: asyncio.Event) -> None:
    if config.data.get("returns") == "yes":
        record(config, "start")
        return
    await acooperative(config, draining)


async def araises(config: Config, draining: asyncio.Event) -> None:
    record(config, "start")
    raise RuntimeError("task blew up")


TASKS: dict[str, dict[str, Callable[..., Any]]] = {
    "cooperative": {"thread": cooperative, "process": cooperative, "asyncio": acooperative},
    "returns": {"thread": returns_at_once, "process": returns_at_once, "asyncio": areturns_at_once},
    "raises": {"thread": raises, "process": raises, "asyncio": araises},
    "returns_if_told": {
        "thread": returns_if_told,
        "process": returns_if_told,
        "asyncio": areturns_if_told,
    },
}


def lines(path: Path) -> list[str]:
    """The log's lines, each without its pid."""
    if not path.exists():
        return []
    return [" ".join(line.split()[:2]) for line in path.read_text().splitlines()]


def eventually(predicate: Callable[[], object], *, timeout: float = 15.0, what: str = "") -> None:
    """Poll ``predicate`` until it is true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.01)


def make_runner(mode: str, task: Callable[..., Any], **options: Any) -> Any:
    """The runner class of ``mode``, built with ``options``."""
    from hotconf import AsyncRunner, ProcessRunner, ThreadRunner

    classes: dict[str, Any] = {
        "thread": ThreadRunner,
        "process": ProcessRunner,
        "asyncio": AsyncRunner,
    }
    return classes[mode](task, **options)
