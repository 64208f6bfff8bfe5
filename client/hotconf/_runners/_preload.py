"""Imported by multiprocessing's fork server only: it loads the application's ``__main__`` there.

Process mode (:mod:`._process`) lists this module last in the fork server's preload, after
hotconf and the task's module (the script may import them). Asked to preload ``__main__``, the
fork server of Python 3.11 and 3.12 does not (CPython gh-126631 and gh-137996, fixed in 3.13 and
3.14), so every task process ran the application's main script again before it could start:
11-15 ms per generation for a 10-line script here, more for a large one. ``_process`` hands the fork
server, and it alone, what a task process is prepared with (``sys.argv``, the main script's path
or module name) as JSON in the environment variable ``FORKSERVER_MAIN_ENV``; importing this
module prepares ``__main__`` once, the way each task process would, so that they find it loaded
and skip that step. Should that fail, one line goes to stderr and each task process prepares
``__main__`` itself, as before. The script runs as ``__mp_main__``, as multiprocessing always
runs it in a child, so code under ``if __name__ == "__main__":`` does not run.
"""

from __future__ import annotations

import json
import os
import sys
from multiprocessing import process, spawn

from hotconf._runners._process import FORKSERVER_MAIN_ENV

__all__: list[str] = []


def _prepare_main() -> None:
    raw = os.environ.pop(FORKSERVER_MAIN_ENV, None)  # not for the fork server's children
    if raw is None:
        return
    try:
        data = json.loads(raw)
        if data.pop("parent", None) != os.getppid():
            return  # not the fork server of the process that set it
        process.current_process()._inheriting = True  # type: ignore[attr-defined]
        try:
            spawn.prepare(data)
        finally:
            del process.current_process()._inheriting  # type: ignore[attr-defined]
    except BaseException as exc:  # whatever the script raises: each child then loads it
        sys.stderr.write(
            f"hotconf: the fork server could not load the main module ({type(exc).__name__}: "
            f"{exc}); each task process loads it itself\n"
        )


_prepare_main()
