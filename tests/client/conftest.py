"""Hygiene for every client test: no thread, child process or asyncio task outlives its test."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from multiprocessing import forkserver, resource_tracker

import pytest


def _children() -> set[int]:
    pids: set[int] = set()
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as f:
                pids.update(int(p) for p in f.read().split())
        except OSError:
            continue
    # multiprocessing's fork server and resource tracker start once and live for the session.
    pids.discard(getattr(forkserver._forkserver, "_forkserver_pid", None) or 0)
    pids.discard(getattr(resource_tracker._resource_tracker, "_pid", None) or 0)
    return pids


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    threads_before = set(threading.enumerate())
    children_before = _children()
    yield
    deadline = time.monotonic() + 5
    while True:
        threads = {t for t in set(threading.enumerate()) - threads_before if t.is_alive()}
        children = _children() - children_before
        if not threads and not children:
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)
    pytest.fail(f"leaked threads {sorted(t.name for t in threads)} / child processes {children}")
