"""What kopf's event machinery costs on the way to hotconf's handler.

    .venv/bin/python bench/kopf_cost.py [--rounds 40]

Runs ``bench/e2e_rollout.py --pods 1 --fanout 0 --api emulator`` with ``bench/kopf_hook`` on
``PYTHONPATH`` and a rollout trace (``HOTCONF_TRACE_FILE``) for every process: the hook traces each
ConfigMap event as kopf has read and parsed it from the watch stream (``kopf.received``); hotconf
traces ``operator.event`` when its handler has the event (after its own parse and decision, about
0.1-0.2 ms). The difference, per revision, is kopf's queueing, worker and handler invocation.
Prints its median and p90, and the end-to-end table of ``e2e_rollout.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "trace.jsonl"
        hook = str(ROOT / "bench" / "kopf_hook")
        env = {
            **os.environ,
            "HOTCONF_TRACE_FILE": str(trace),
            "PYTHONPATH": os.pathsep.join(filter(None, [hook, os.environ.get("PYTHONPATH")])),
        }
        command = [sys.executable, str(ROOT / "bench" / "e2e_rollout.py"), "--pods", "1",
                   "--rounds", str(args.rounds), "--fanout", "0", "--api", "emulator"]  # fmt: skip
        subprocess.run(command, env=env, check=True)
        first: dict[str, dict[str, int]] = defaultdict(dict)
        for raw in trace.read_text().splitlines():
            line = json.loads(raw)
            first[line["rev"]].setdefault(line["hop"], int(line["t"]))
    costs = sorted(
        (hops["operator.event"] - hops["kopf.received"]) / 1e6
        for hops in first.values()
        if "kopf.received" in hops and "operator.event" in hops
    )
    if not costs:
        raise SystemExit("no revision was traced by both kopf's hook and hotconf")
    p90 = costs[min(len(costs) - 1, round(0.9 * (len(costs) - 1)))]
    print(
        f"\nkopf: watch event parsed -> hotconf's handler has it, {len(costs)} revisions: "
        f"p50 {statistics.median(costs):.3f} ms, p90 {p90:.3f} ms"
    )


if __name__ == "__main__":
    main()
