"""Pytest plugin: no thread, child process or asyncio task outlives the test that made it.

Registered for every test by ``tests/conftest.py``; two autouse fixtures check each test:

* :func:`no_leaked_threads_or_processes` notes the threads and child processes alive when the
  test's function-scoped fixtures start, and fails the test when others are still alive (a
  child: not yet reaped) 5 s after all its fixtures were torn down. Session- and module-scoped
  fixtures (the control plane, the chart release, the emulated API) are set up before it, so
  what they start for many tests is not counted; what a test starts on purpose (a sidecar, an
  operator) must be stopped and waited for by the end of the test. A process a session fixture
  restarts inside a test (the control plane's etcd and kube-apiserver) carries
  :data:`SHARED_CHILD` in its environment and is not counted either.
* :func:`no_leaked_tasks`, for an ``async def`` test: the tasks still pending on its event loop
  once the test and its async fixtures are done, given 5 s to finish. Without it they would
  go unseen: pytest-asyncio cancels whatever is left when it closes the loop.

The runner harness (:func:`hotconf.testing.running`) checks the same of the tasks an asyncio
runner leaves on the loop it runs on, which no test's loop is.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import threading
import time
from collections.abc import Iterator
from multiprocessing import forkserver, resource_tracker

import pytest

#: Seconds what a test started gets, after its teardown, to end (a thread) or be reaped.
GRACE = 5.0
#: ``NAME=value`` in a child's environment: the child belongs to a session fixture, which
#: stops it at the end of the session (it may be restarted by a test in between).
SHARED_CHILD = "HOTCONF_TEST_SHARED_CHILD=1"
# pytest-asyncio's fixture holding the asyncio.Runner of a test with a function-scoped loop.
_RUNNER = "_function_scoped_runner"


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
    return {pid for pid in pids if not _shared(pid)}


def _shared(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return SHARED_CHILD.encode() in f.read().split(b"\0")
    except OSError:
        return False


def _describe(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            command = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        command = ""
    return f"{pid} ({command[:120] or 'exited, not reaped'})"


@pytest.fixture(autouse=True)
def no_leaked_threads_or_processes() -> Iterator[None]:
    threads_before = set(threading.enumerate())
    children_before = _children()
    yield
    deadline = time.monotonic() + GRACE
    while True:
        threads = {t for t in set(threading.enumerate()) - threads_before if t.is_alive()}
        children = _children() - children_before
        if not threads and not children:
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)
    pytest.fail(
        f"the test left threads {sorted(t.name for t in threads)} and child processes "
        f"{[_describe(pid) for pid in sorted(children)]} running {GRACE:g} s after its teardown"
    )


async def _pending_after(grace: float) -> list[asyncio.Task[object]]:
    loop = asyncio.get_running_loop()
    current = asyncio.current_task()
    deadline = loop.time() + grace
    while True:
        pending = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        if not pending or loop.time() > deadline:
            return pending
        await asyncio.sleep(0.02)


@pytest.fixture(autouse=True)
def no_leaked_tasks(
    request: pytest.FixtureRequest, no_leaked_threads_or_processes: None
) -> Iterator[None]:
    # After the thread check's setup, so before its teardown: that one must run once the loop
    # is closed, which joins the loop's default executor threads.
    if not inspect.iscoroutinefunction(getattr(request, "function", None)):
        yield
        return
    runners = [name for name in request.fixturenames if name.endswith("_scoped_runner")]
    if runners != [_RUNNER]:
        if not runners:  # a pytest-asyncio that names its runner otherwise: this check is blind
            pytest.fail(f"leak_checks: no {_RUNNER} fixture for an async test; update it")
        yield  # a loop shared by several tests may hold tasks across them on purpose
        return
    # Requested here, so set up before the test's async fixtures and torn down after them (and
    # after this fixture): the loop is still open when the teardown below looks at its tasks.
    runner: asyncio.Runner = request.getfixturevalue(_RUNNER)
    yield
    pending = runner.run(_pending_after(GRACE))
    if pending:  # the runner cancels them when it closes
        names = sorted(f"{t.get_name()} ({t.get_coro()!r})" for t in pending)
        pytest.fail(f"the test left asyncio tasks pending {GRACE:g} s after it ended: {names}")
