"""Benchmark: CPU an application worker (``hotconf.run``, thread mode) spends per new config.

Runs a relay (:class:`hotconf.testing.FakeRelay`) in this process and one worker process like
the end-to-end benchmark's: its task notes the revision and waits for ``draining``. Publishes N
new revisions one after the other, each waiting for the worker's ACK, and reports the worker's
CPU time per config, its threads' context switches per config (``/proc/<pid>/task/*/status``)
and the publish-to-ACK latency. The CPU is the sum over the worker's threads
of the time the kernel ran them (``/proc/<pid>/task/*/schedstat``, in nanoseconds; thread mode's
threads live as long as the worker), so the figure holds on a busy machine.

    .venv/bin/python bench/worker_cpu.py [--configs 500] [--pause 0.15] [--yaml] [--worker e2e]

``--worker e2e`` runs the end-to-end benchmark's own worker
(``tests/support/hotconf_e2e/worker.py``: its ``validate`` hook and report lines included) instead
of the minimal one; ``--pause`` sleeps between configs, as the end-to-end rounds do (a worker
woken after a pause spends several times the CPU of one fed back to back).

``--yaml`` adds a 2 KiB ``app.yaml`` key to every config (parsed and validated by the worker);
``--profile`` runs the worker under cProfile. Results go to ``docs/performance.md`` by hand.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hotconf.testing import FakeRelay

WORKER = r"""
import sys, threading, hotconf

def task(config, draining):
    config.data.get("value")
    draining.wait()

hotconf.run(task, mode="thread", socket=sys.argv[1], configmap="app", name="bench-worker")
"""

YAML = "".join(
    f"service{i}:\n  port: {8000 + i}\n  hosts: [a, b, c]\n  on: true\n" for i in range(40)
)


ROOT = Path(__file__).resolve().parents[1]


def cpu_seconds(pid: int) -> float:
    """CPU time the kernel ran the live threads of ``pid`` (schedstat: nanoseconds)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except FileNotFoundError:
            pass  # a thread that just ended
    return total / 1e9


def context_switches(pid: int) -> int:
    """Context switches (voluntary and not) of the live threads of ``pid``, from /proc: each
    voluntary one is a thread going to sleep, to be woken again."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            status = (task / "status").read_text()
        except FileNotFoundError:
            continue  # a thread that just ended
        for line in status.splitlines():
            if "ctxt_switches:" in line:
                total += int(line.split()[1])
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument(
        "--pause",
        type=float,
        default=0.0,
        help="seconds between configs (the end-to-end benchmark pauses ~0.15 s per round)",
    )
    parser.add_argument("--yaml", action="store_true", help="add a 2 KiB app.yaml key")
    parser.add_argument(
        "--worker",
        choices=("minimal", "e2e"),
        default="minimal",
        help="the worker: a minimal task, or the end-to-end benchmark's (hotconf_e2e.worker)",
    )
    parser.add_argument("--profile", help="run the worker under cProfile, write stats here")
    parser.add_argument(
        "--callgrind",
        action="store_true",
        help="run the worker under valgrind's callgrind and count its instructions per config",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, FakeRelay(Path(tmp) / "hotconf.sock") as relay:
        relay.publish({"value": "first"})
        command = [sys.executable]
        if args.callgrind:
            out = Path(tmp) / "callgrind.out"
            command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *command]
        if args.profile:
            command += ["-m", "cProfile", "-o", args.profile]
        env = dict(os.environ)
        if args.worker == "e2e":
            env = {
                **env,
                "PYTHONPATH": os.pathsep.join(
                    [str(ROOT / "tests" / "support"), *filter(None, [env.get("PYTHONPATH")])]
                ),
                "HOTCONF_NAMESPACE": "default",
            }
            command += ["-m", "hotconf_e2e.worker", "--socket", str(relay.path)]
            command += ["--configmap", "app", "--pod", "bench-worker"]
            command += ["--report", f"{tmp}/report.jsonl", "--shared-report", f"{tmp}/all.jsonl"]
        else:
            script = Path(tmp) / "worker.py"
            script.write_text(WORKER)
            command += [str(script), str(relay.path)]
        worker = subprocess.Popen(command, env=env)
        try:
            deadline = time.monotonic() + (120 if args.callgrind else 20)
            while not relay.clients() or relay.clients()[0].verdicts.get(relay.ref) is None:
                if time.monotonic() > deadline:
                    raise SystemExit("the worker did not connect")
                time.sleep(0.05)
            timings = []
            cpu = 0.0
            switches = 0
            for n in range(args.warmup + args.configs):
                if args.pause:
                    time.sleep(args.pause)
                if n == args.warmup:
                    cpu = cpu_seconds(worker.pid)
                    switches = context_switches(worker.pid)
                    if args.callgrind:
                        subprocess.run(["callgrind_control", "--zero", str(worker.pid)], check=True)
                data = {"value": str(n)}
                if args.yaml:
                    data["app.yaml"] = f"# {n}\n" + YAML
                started = time.perf_counter()
                [verdict] = relay.publish(data, wait=5)
                elapsed = time.perf_counter() - started
                if verdict.result != "ack":
                    raise SystemExit(f"the worker answered {verdict.result}: {verdict.message}")
                if n >= args.warmup:
                    timings.append(elapsed * 1000)
            cpu = cpu_seconds(worker.pid) - cpu
            switches = context_switches(worker.pid) - switches
            if args.callgrind:
                subprocess.run(["callgrind_control", "--dump", str(worker.pid)], check=True)
                dumps = sorted(Path(tmp).glob("callgrind.out.*"))
                instructions = int(dumps[-1].read_text().split("summary:")[1].split()[0])
                print(f"worker instructions per config: {instructions / args.configs:,.0f}")
        finally:
            worker.terminate()
            worker.wait(60)
    timings.sort()
    print(
        f"worker CPU per config: {cpu * 1000 / args.configs:.3f} ms; publish -> ACK "
        f"p50 {statistics.median(timings):.2f} ms, "
        f"p99 {timings[max(0, round(len(timings) * 0.99) - 1)]:.2f} ms ({args.configs} configs); "
        f"{switches / args.configs:.1f} context switches per config"
    )


if __name__ == "__main__":
    main()
