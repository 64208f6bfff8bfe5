"""Where a process-mode switch-over spends its time, step by step.

    .venv/bin/python bench/process_switchover_steps.py [--switches 40]

Runs ``hotconf.ProcessRunner`` on a task that returns as soon as ``draining`` is set, fed by
``hotconf.testing.FakeRelay``, one new revision every 50 ms (so the standby is always forked
ahead, as between real rollouts; ``bench/client_switchover.py`` publishes back to back). The
runner's own steps are timed by wrapping them: ``draining`` set, the old generation counted
ended (its ``Exited`` posted), the new one's start begun and done, and the new task running
(``ReloadEvent.started_at``), each in ms since the frame arrived (``received_at``); medians over
the switch-overs after the first five.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import hotconf
from hotconf._runners import _process
from hotconf.testing import FakeRelay, running


def drains_at_once(config: hotconf.Config, draining: Any) -> None:
    draining.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--switches", type=int, default=40)
    args = parser.parse_args()
    marks: list[tuple[str, float]] = []
    generation = _process._ProcessGeneration
    drain, start = generation.drain, generation.start

    def timed_drain(self: Any) -> None:
        marks.append(("draining set", time.monotonic()))
        drain(self)

    def timed_start(self: Any) -> float:
        post = self.post

        def timed_post(item: object) -> None:
            marks.append(("old generation ended", time.monotonic()))
            post(item)

        self.post = timed_post
        marks.append(("new start begun", time.monotonic()))
        started = start(self)
        marks.append(("new start done (its ACK next)", time.monotonic()))
        return started

    generation.drain, generation.start = timed_drain, timed_start  # type: ignore[method-assign]
    events: list[hotconf.ReloadEvent] = []
    rows: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp, FakeRelay(Path(tmp) / "relay.sock") as relay:
        relay.publish({"value": "0"})
        runner = hotconf.ProcessRunner(drains_at_once, socket=relay.path, on_event=events.append)
        with running(runner):
            while not events:
                time.sleep(0.005)
            for i in range(1, args.switches + 1):
                marks.clear()
                relay.publish({"value": str(i)}, wait=10)
                while events[-1].kind != "reloaded" or len(events) < i + 1:
                    time.sleep(0.0005)
                time.sleep(0.05)
                event = events[-1]
                assert event.received_at is not None and event.started_at is not None
                row = {what: (at - event.received_at) * 1e3 for what, at in marks}
                row["new task running"] = (event.started_at - event.received_at) * 1e3
                rows.append(row)
    order = ["draining set", "old generation ended", "new start begun", "new task running",
             "new start done (its ACK next)"]  # fmt: skip
    print(f"process mode, {len(rows) - 5} switch-overs, ms since the frame arrived (p50):")
    for what in order:
        values = [row[what] for row in rows[5:] if what in row]
        if values:
            print(f"  {what:<30} {statistics.median(values):6.2f}")


if __name__ == "__main__":
    main()
