"""An application process for end-to-end tests and the benchmark, built on ``hotconf.run``.

Run as ``python -m hotconf_e2e.worker --socket PATH --configmap NAME --report FILE --pod NAME``.
Each time its task starts on a revision it appends one JSON line to the report file::

    {"pod": ..., "pid": ..., "generation": n, "revision": ..., "value": data["value"],
     "size": bytes of the values, "t": time}

``generation`` counts task starts, so a test sees an application restart as a new line.
Its ``validate`` hook NACKs a config whose key ``reject`` names this pod (or is ``*``), and
exits the process at once (``os._exit(3)``, no ACK, no goodbye) the first time it sees a config
whose key ``crash`` names this pod: it leaves ``<report>.crashed`` behind, so the same worker
started again takes the config (a transient crash, as when a container is OOM-killed).
With ``--mode process`` the task runs in process mode (a picklable object, and ``generation``
counts the lines of the report file, since each generation is a new process); the default is
thread mode. With ``--shared-report FILE`` the same line is also appended to FILE, which many
workers share (one small ``O_APPEND`` write per line, so lines never interleave): the benchmark
follows one file instead of polling one per pod, so its own polling takes no CPU from the pods
it measures.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from typing import Any

import hotconf


def _write(line: dict[str, Any], report: str, shared: str | None) -> None:
    text = json.dumps(line) + "\n"
    with open(report, "a", encoding="utf-8") as f:
        f.write(text)
    if shared:
        with open(shared, "a", encoding="utf-8") as f:
            f.write(text)


class ProcessTask:
    """The task of ``--mode process``: picklable, and it counts generations in the report."""

    def __init__(self, pod: str, report: str, shared: str | None) -> None:
        self.pod, self.report, self.shared = pod, report, shared

    def __call__(self, config: hotconf.Config, draining: Any) -> None:
        try:
            with open(self.report, encoding="utf-8") as f:
                generation = 1 + sum(1 for _ in f)
        except FileNotFoundError:
            generation = 1
        line = {
            "pod": self.pod,
            "pid": os.getpid(),
            "generation": generation,
            "revision": config.revision,
            "value": config.data.get("value"),
            "size": sum(len(v.encode()) for v in config.data.values()),
            "t": time.time(),
        }
        _write(line, self.report, self.shared)
        draining.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--socket", required=True)
    parser.add_argument("--configmap", required=True)
    parser.add_argument("--report", required=True)
    parser.add_argument("--pod", required=True)
    parser.add_argument("--shared-report")
    parser.add_argument("--mode", choices=("thread", "process"), default="thread")
    args = parser.parse_args()
    generation = 0

    crashed = args.report + ".crashed"

    def validate(config: hotconf.Config) -> None:
        if config.data.get("crash") == args.pod and not os.path.exists(crashed):
            with open(crashed, "w", encoding="utf-8") as marker:
                marker.write(config.revision)
            os._exit(3)
        reject = config.data.get("reject", "")
        if reject in ("*", args.pod):
            raise hotconf.ConfigRejected(f"{args.pod} refuses this config (reject={reject})")

    # Opened once for appending: each line is one write(2), the least a benchmark's worker can
    # do per config (opening both files per line cost it about a tenth of its CPU per update).
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
    reports = [os.open(path, flags, 0o644) for path in (args.report, args.shared_report) if path]
    pid = os.getpid()

    def task(config: hotconf.Config, draining: threading.Event) -> Any:
        nonlocal generation
        generation += 1
        line = {
            "pod": args.pod,
            "pid": pid,
            "generation": generation,
            "revision": config.revision,
            "value": config.data.get("value"),
            # Bytes of the values, as the API server counts them for its 1 MiB limit.
            "size": sum(len(v) if v.isascii() else len(v.encode()) for v in config.data.values()),
            "t": time.time(),
        }
        text = (json.dumps(line) + "\n").encode()
        for fd in reports:
            os.write(fd, text)
        draining.wait()

    if args.mode == "process":
        task = ProcessTask(args.pod, args.report, args.shared_report)
    hotconf.run(
        task,
        mode=args.mode,
        socket=args.socket,
        configmap=args.configmap,
        validate=validate,
        first_config_timeout=600,
        name=args.pod,
    )


if __name__ == "__main__":
    main()
