"""The quickstart worker: prints the greeting from the ConfigMap's app.yaml every `interval` s.

Run it with `scripts/demo` (or `hotconf dev --configmap examples/quickstart/configmap.yaml --
python examples/quickstart/worker.py`); edit the ConfigMap and save to see it restart.
"""

from __future__ import annotations

import sys
import threading
import time

import hotconf

_output = threading.Lock()


def say(line: str) -> None:
    """Print one whole line: the work runs in one thread and hotconf's events come from another,
    and two print() calls can interleave on one line."""
    with _output:
        sys.stdout.write(f"worker: {line}\n")
        sys.stdout.flush()


def validate(config: hotconf.Config) -> None:
    """Reject a config the worker cannot use; hotconf NACKs it and keeps the running one."""
    app = config["app.yaml"]
    if not isinstance(app, dict) or not isinstance(app.get("greeting"), str):
        raise hotconf.ConfigRejected("app.yaml needs a `greeting:` text")
    interval = app.get("interval", 0.5)
    if isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0:
        raise hotconf.ConfigRejected("app.yaml: `interval` must be a positive number of seconds")


def work(config: hotconf.Config, draining: threading.Event) -> None:
    """One generation: runs until hotconf sets `draining` for a new revision."""
    app = config["app.yaml"]
    say(f"running revision {config.revision[:19]}")
    while not draining.is_set():
        say(app["greeting"])
        draining.wait(app.get("interval", 0.5))
    say(f"draining revision {config.revision[:19]}")


def log_event(event: hotconf.ReloadEvent) -> None:
    if event.kind == "reloaded" and event.received_at and event.started_at:
        took = (event.started_at - event.received_at) * 1000
        say(f"restarted on the new revision in {took:.1f} ms")
    elif event.kind == "rejected":
        say(f"kept the running config; rejected: {event.message}")


if __name__ == "__main__":
    started = time.monotonic()
    hotconf.run(work, mode="thread", validate=validate, on_event=log_event)
    say(f"stopped after {time.monotonic() - started:.1f} s")
