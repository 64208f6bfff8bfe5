"""Benchmark of the application library: how fast a new revision becomes a running generation.

Run: ``.venv/bin/python bench/client_switchover.py [--iterations 200] [--json out.json]``.

Measures, on this machine:

* switch-over per mode (thread, process, asyncio): from the moment the client received the config
  frame (``ReloadEvent.received_at``) to the moment the new generation began to run
  (``ReloadEvent.started_at``), with a task that returns as soon as ``draining`` is set; and the
  relay's view, ``publish`` to ACK;
* a 1 MiB config: ``publish`` to ACK (framing, socket, decode, Config, restart, ACK);
* ``hotconf dev``: a saved file (written by rename, as editors do) to the new generation running
  in the worker process (the worker prints ``time.monotonic()`` when a generation starts; the
  clock is system-wide).

Results go to ``docs/performance.md`` by hand; nothing here is asserted by a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hotconf
from hotconf.testing import FakeRelay, running

ROOT = Path(__file__).resolve().parents[1]


def drains_at_once(config: hotconf.Config, draining: Any) -> None:
    draining.wait()


async def adrains_at_once(config: hotconf.Config, draining: Any) -> None:
    await draining.wait()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": statistics.median(values) * 1000,
        "p99_ms": percentile(values, 99) * 1000,
        "max_ms": max(values) * 1000,
    }


def bench_mode(mode: str, iterations: int, tmp: Path) -> dict[str, dict[str, float]]:
    events: list[hotconf.ReloadEvent] = []
    classes: dict[str, Callable[..., Any]] = {
        "thread": hotconf.ThreadRunner,
        "process": hotconf.ProcessRunner,
        "asyncio": hotconf.AsyncRunner,
    }
    task = adrains_at_once if mode == "asyncio" else drains_at_once
    switch: list[float] = []
    acked: list[float] = []
    with FakeRelay(tmp / f"{mode}.sock") as relay:
        relay.publish({"i": "0"})
        runner = classes[mode](task, socket=relay.path, on_event=events.append)
        with running(runner):
            while not events:
                time.sleep(0.005)
            for i in range(1, iterations + 1):
                start = time.monotonic()
                [verdict] = relay.publish({"i": str(i)}, wait=10)
                acked.append(time.monotonic() - start)
                assert verdict.result == "ack", verdict
                while events[-1].revision != verdict.revision:  # the event follows the ACK
                    time.sleep(0.0005)
                event = events[-1]
                assert event.kind == "reloaded" and event.revision == verdict.revision
                assert event.started_at is not None and event.received_at is not None
                switch.append(event.started_at - event.received_at)
    return {"switch_over": summary(switch), "publish_to_ack": summary(acked)}


def bench_one_mib(iterations: int, tmp: Path) -> dict[str, float]:
    times: list[float] = []
    filler = "x" * (1024 * 1024 - 64)
    with FakeRelay(tmp / "mib.sock") as relay:
        relay.publish({"big.txt": filler + "0"})
        started = threading.Event()
        runner = hotconf.ThreadRunner(
            drains_at_once, socket=relay.path, on_event=lambda e: started.set()
        )
        with running(runner):
            started.wait(10)
            for i in range(1, iterations + 1):
                start = time.monotonic()
                [verdict] = relay.publish({"big.txt": filler + str(i % 10)}, wait=10)
                times.append(time.monotonic() - start)
                assert verdict.result == "ack", verdict
    return summary(times)


_WORKER = """
import sys, time, hotconf
def task(config, draining):
    print("started", config.data["value"], time.monotonic(), flush=True)
    draining.wait()
if __name__ == "__main__":
    hotconf.run(task)
"""

_MANIFEST = """apiVersion: v1
kind: ConfigMap
metadata:
  name: bench
data:
  value: "{value}"
"""


def bench_dev(iterations: int, tmp: Path) -> dict[str, float]:
    worker = tmp / "worker.py"
    worker.write_text(_WORKER)
    manifest = tmp / "cm.yaml"
    manifest.write_text(_MANIFEST.format(value=0))
    hotconf_cli = Path(sys.executable).with_name("hotconf")
    dev = subprocess.Popen(
        [str(hotconf_cli), "dev", "--configmap", str(manifest), "--", sys.executable, str(worker)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert dev.stdout is not None
    times: list[float] = []
    try:

        def wait_for(value: int) -> float:
            assert dev.stdout is not None
            for line in dev.stdout:
                word, seen, at = line.split()
                if word == "started" and seen == str(value):
                    return float(at)
            raise RuntimeError("hotconf dev ended")

        wait_for(0)
        for i in range(1, iterations + 1):
            time.sleep(0.05)  # let the last change settle, as between two saves by a person
            temporary = tmp / "cm.yaml.swp"
            temporary.write_text(_MANIFEST.format(value=i))
            start = time.monotonic()
            os.replace(temporary, manifest)
            times.append(wait_for(i) - start)
    finally:
        dev.terminate()
        dev.wait(30)
        dev.stdout.close()
    return summary(times)


def machine() -> dict[str, str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=200, help="per mode (default 200)")
    parser.add_argument("--mib-iterations", type=int, default=50, help="1 MiB relays (50)")
    parser.add_argument("--dev-iterations", type=int, default=100, help="hotconf dev saves (100)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()
    results: dict[str, Any] = {"machine": machine()}
    with tempfile.TemporaryDirectory(prefix="hotconf-bench-") as name:
        tmp = Path(name)
        for mode in ("thread", "asyncio", "process"):
            results[mode] = bench_mode(mode, args.iterations, tmp)
        results["one_mib"] = bench_one_mib(args.mib_iterations, tmp)
        results["dev"] = bench_dev(args.dev_iterations, tmp)
    m = results["machine"]
    print(f"machine: {m['nproc']} cores, {m['cpu']}, Python {m['python']}, {m['date']}")
    print(f"{'measure':<44} {'n':>5} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9}")
    rows = []
    for mode in ("thread", "asyncio", "process"):
        rows.append((f"{mode}: frame arrival -> new run started", results[mode]["switch_over"]))
        rows.append((f"{mode}: publish -> ACK", results[mode]["publish_to_ack"]))
    rows.append(("1 MiB config: publish -> ACK (thread)", results["one_mib"]))
    rows.append(("hotconf dev: file saved -> new run started", results["dev"]))
    for label, row in rows:
        print(
            f"{label:<44} {row['n']:>5} {row['p50_ms']:>9.2f} {row['p99_ms']:>9.2f}"
            f" {row['max_ms']:>9.2f}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
