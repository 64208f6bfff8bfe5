"""Where the time of a rollout goes: the per-hop breakdown of a rollout trace.

    .venv/bin/python bench/trace_breakdown.py TRACE.jsonl

reads a trace written with ``HOTCONF_TRACE_FILE`` (``hotconf_wire.trace``: one JSON line per hop
and process, ``CLOCK_MONOTONIC`` nanoseconds) and prints, per hop in rollout order, when the
last pod passed it, counted from the start of each revision's rollout, as the median and p99
over revisions, and the step from the hop before. ``bench/e2e_rollout.py --trace`` calls
:func:`print_breakdown` with the time just before each round's PATCH as each revision's start,
so the first hop then includes the API server's write and watch delivery; run alone, a
revision starts at its ``operator.event`` line.

With several pods, "the last pod passed it" makes the steps of per-pod hops read as the
slowest pod's progress: the step into ``sidecar.received`` also holds the wait for a push slot
and the other pods' pushes ahead of it on the operator's loop.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

from hotconf_wire.trace import HOPS

__all__ = ["breakdown", "print_breakdown", "read_trace"]

#: line["rev"] -> line["hop"] -> the times (ns) at which each process passed it.
Trace = dict[str, dict[str, list[int]]]


def read_trace(path: Path) -> Trace:
    trace: Trace = defaultdict(lambda: defaultdict(list))
    for raw in path.read_text().splitlines():
        if raw.strip():
            line = json.loads(raw)
            trace[line["rev"]][line["hop"]].append(int(line["t"]))
    return trace


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


def breakdown(
    trace: Trace, starts: Mapping[str, int] | None = None
) -> list[tuple[str, float, float, float, int]]:
    """Per hop: (hop, p50 ms since the start, p99 ms, p50 ms step from the previous hop,
    revisions seen). ``starts``: revision -> its start (ns); default: its operator.event."""
    since: dict[str, list[float]] = defaultdict(list)
    steps: dict[str, list[float]] = defaultdict(list)
    for revision, hops in trace.items():
        if starts is not None:
            if revision not in starts:
                continue
            start = starts[revision]
        elif "operator.event" in hops:
            start = min(hops["operator.event"])
        else:
            continue
        previous = start
        for hop in HOPS:
            if hop not in hops:
                continue
            last = max(hops[hop])
            since[hop].append((last - start) / 1e6)
            steps[hop].append((last - previous) / 1e6)
            previous = last
    return [
        (
            hop,
            statistics.median(since[hop]),
            _percentile(since[hop], 99),
            statistics.median(steps[hop]),
            len(since[hop]),
        )
        for hop in HOPS
        if since[hop]
    ]


def print_breakdown(rows: Iterable[tuple[str, float, float, float, int]], *, title: str) -> None:
    print(f"\n{title}", flush=True)
    print("hop                 | since start p50 ms  p99 ms | step p50 ms | revisions")
    for hop, p50, p99, step, count in rows:
        print(f"{hop:<19} | {p50:18.3f} {p99:7.3f} | {step:11.3f} | {count:>9}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trace", type=Path, help="a file written with HOTCONF_TRACE_FILE")
    args = parser.parse_args()
    print_breakdown(breakdown(read_trace(args.trace)), title=f"{args.trace}: per hop")


if __name__ == "__main__":
    main()
