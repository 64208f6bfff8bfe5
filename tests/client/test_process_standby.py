"""Process mode starts a revision in a task process forked before the revision arrived (a warm
standby, waiting for its config), forks the next standby once the new generation runs, and sends
an unused standby away when the runner stops; and no process it made outlives the application:
after a SIGKILL of the application's main process its fork server, its running generation, its
standby and multiprocessing's resource tracker all end (checked by pid); and when the fork
server is killed, the generation it forked ends too (the runner can no longer see it) and the
next revision starts on a new fork server. The application's main script runs once in the fork
server, not again in every task process (Python 3.11/3.12 would rerun it in each). A task that
cannot be pickled is refused when the runner starts, before any config, saying what to do."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from multiprocessing import forkserver
from pathlib import Path

import pytest
from hotconf_client_tasks import cooperative, eventually, lines

import hotconf
from hotconf.testing import FakeRelay, running

SUPPORT = Path(__file__).parents[1] / "support"

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"),
    reason="reads the process tree from /proc",
)


def children(pid: int) -> set[int]:
    """The live (not zombie) children of ``pid``."""
    found: set[int] = set()
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found.update(int(p) for p in f.read().split())
        except OSError:
            continue
    return {p for p in found if alive(p)}


def descendants(pid: int) -> set[int]:
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children(todo.pop()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie has ended: only its exit status is left to collect)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def pids(log: Path) -> list[int]:
    """The pid of each generation, in the order they started."""
    starts = [line for line in log.read_text().splitlines() if line.startswith("start")]
    return [int(line.split()[2]) for line in starts]


def test_a_revision_starts_in_a_process_forked_before_it_arrived(tmp_path: Path) -> None:
    log = tmp_path / "log"
    with FakeRelay(tmp_path / "s.sock") as relay:
        relay.publish({"log": str(log), "value": "one"})
        runner = hotconf.ProcessRunner(cooperative, socket=relay.path)
        with running(runner):
            eventually(lambda: lines(log) == ["start one"], what="first generation")
            [first] = pids(log)
            server = forkserver._forkserver._forkserver_pid  # type: ignore[attr-defined]
            assert server is not None
            eventually(lambda: children(server) - {first}, what="a standby beside the generation")
            waiting = children(server) - {first}
            [verdict] = relay.publish({"log": str(log), "value": "two"}, wait=10)
            assert verdict.result == "ack"
            eventually(lambda: len(pids(log)) == 2, what="the second generation")
            second = pids(log)[1]
            assert second in waiting, f"pid {second} was forked after the revision arrived"
            # The next standby is forked once the new generation runs, ready for the next one.
            eventually(lambda: children(server) - {second}, what="the next standby")
            standby = children(server) - {first, second}
        # close(): the unused standby is sent away and reaped by the fork server.
        eventually(lambda: not any(alive(p) for p in standby), what="the standby to end")
    assert lines(log) == ["start one", "stop one", "start two", "stop two"]


_APP = """
import sys
import hotconf
from hotconf_client_tasks import cooperative
if __name__ == "__main__":
    hotconf.run(cooperative, mode="process", socket=sys.argv[1])
"""


def test_a_killed_main_process_leaves_no_process_behind(tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(_APP)
    log = tmp_path / "log"
    with FakeRelay(tmp_path / "s.sock") as relay:
        relay.publish({"log": str(log), "value": "one"})
        app = subprocess.Popen(
            [sys.executable, str(script), str(relay.path)],
            env={**os.environ, "PYTHONPATH": str(SUPPORT)},
            stderr=subprocess.PIPE,
        )
        try:
            eventually(lambda: lines(log) == ["start one"], what="first generation")
            [generation] = pids(log)
            # The fork server, the resource tracker, the generation and a standby.
            eventually(lambda: len(descendants(app.pid)) >= 4, what="the standby")
            left = descendants(app.pid)
            assert generation in left
            app.kill()
            app.wait()
            eventually(
                lambda: not {p for p in left if alive(p)},
                what=f"every process of the application to end: {left}",
            )
        finally:
            app.kill()
            app.wait()
            assert app.stderr is not None
            app.stderr.close()
    assert lines(log) == ["start one"]  # killed, not drained: nothing supervises it any more


def test_a_generation_dies_with_the_fork_server_that_forked_it(tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(_APP)
    log = tmp_path / "log"
    with FakeRelay(tmp_path / "s.sock") as relay:
        relay.publish({"log": str(log), "value": "one"})
        app = subprocess.Popen(
            [sys.executable, str(script), str(relay.path)],
            env={**os.environ, "PYTHONPATH": str(SUPPORT)},
            stderr=subprocess.DEVNULL,
        )
        try:
            eventually(lambda: lines(log) == ["start one"], what="first generation")
            [generation] = pids(log)
            server = next(p for p in children(app.pid) if generation in children(p))
            os.kill(server, signal.SIGKILL)
            eventually(lambda: not alive(generation), what="the generation to end")
            # The runner lives on, and the next revision starts on a new fork server.
            [verdict] = relay.publish({"log": str(log), "value": "two"}, wait=30)
            assert verdict.result == "ack", verdict
            eventually(lambda: lines(log) == ["start one", "start two"], what="the next run")
            assert app.poll() is None
        finally:
            app.kill()
            app.wait()


_COUNTING_APP = """
import os, sys
with open(sys.argv[2], "a") as f:
    f.write(f"{__name__} {os.getpid()}\\n")
import hotconf
from hotconf_client_tasks import cooperative
if __name__ == "__main__":
    hotconf.run(cooperative, mode="process", socket=sys.argv[1])
"""


def test_the_main_script_runs_once_in_the_fork_server_not_per_generation(tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(_COUNTING_APP)
    log, runs = tmp_path / "log", tmp_path / "runs"
    with FakeRelay(tmp_path / "s.sock") as relay:
        relay.publish({"log": str(log), "value": "0"})
        app = subprocess.Popen(
            [sys.executable, str(script), str(relay.path), str(runs)],
            env={**os.environ, "PYTHONPATH": str(SUPPORT)},
        )
        try:
            eventually(lambda: lines(log) == ["start 0"], what="first generation")
            for value in ("1", "2", "3"):
                [verdict] = relay.publish({"log": str(log), "value": value}, wait=10)
                assert verdict.result == "ack"
            eventually(lambda: len(pids(log)) == 4, what="four generations")
            app.send_signal(signal.SIGTERM)
            assert app.wait(timeout=30) == 0
        finally:
            app.kill()
            app.wait()
    names = [line.split()[0] for line in runs.read_text().splitlines()]
    assert sorted(names) == ["__main__", "__mp_main__"], names


def test_an_unpicklable_task_is_refused_at_start_with_what_to_do(tmp_path: Path) -> None:
    with FakeRelay(tmp_path / "s.sock") as relay:
        runner = hotconf.ProcessRunner(lambda config, draining: None, socket=relay.path)
        with pytest.raises(hotconf.RunnerError, match="module-level function"):
            with running(runner):
                pass
