"""What one hop of the rollout trace costs in the process that records it.

    .venv/bin/python bench/trace_cost.py [--marks 20000]

Times ``hotconf_wire.trace.Tracer.mark`` with ``timeit``: enabled (one JSON line appended to a
file in a temporary directory, as ``HOTCONF_TRACE_FILE`` does) and disabled (the one attribute
test every hop makes when the trace is off).
"""

from __future__ import annotations

import argparse
import tempfile
import timeit
from pathlib import Path

from hotconf_wire.trace import DISABLED, Tracer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--marks", type=int, default=20000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tracer = Tracer(Path(tmp) / "trace.jsonl", proc="sidecar")
        revision = "sha256:" + "a" * 64

        def enabled() -> None:
            tracer.mark("sidecar.verified", cm="shop/web-config", rev=revision, pod="shop/web-0")

        def disabled() -> None:
            if DISABLED.enabled:
                DISABLED.mark("sidecar.verified", cm="shop/web-config", rev=revision)

        on = timeit.timeit(enabled, number=args.marks) / args.marks
        off = timeit.timeit(disabled, number=args.marks) / args.marks
        tracer.close()
    print(f"trace on: {on * 1e6:.2f} us per hop; off: {off * 1e9:.0f} ns per hop")


if __name__ == "__main__":
    main()
