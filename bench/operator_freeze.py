"""The operator's heap freezes and how long each one held its event loop.

    .venv/bin/python bench/operator_freeze.py [--pods 300] [--seconds 15]

Starts the emulator (``kube_emulator``) with ``--pods`` Pod objects the operator indexes, then
``hotconf-operator --log-level debug`` against it, waits ``--seconds`` (the first freeze comes
5 s after start, once the first lists are indexed) and prints the operator's log lines about its
heap (``_gc.py``): the collection before watching and each freeze, with the time it took. To
compare with an older tree, run it with that tree's ``operator`` and ``wire`` first on
``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))

from hotconf_e2e import Api, OperatorProcess, make_key
from kube_control_plane import AdminClient
from kube_emulator._process import EmulatorProcess


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with EmulatorProcess(workdir=work) as emulator:
            api = Api(AdminClient(emulator.url), "default")
            for i in range(args.pods):
                api.create_pod({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": f"pod-{i}", "labels": {"hotconf.dev/inject": "true"},
                                 "annotations": {"hotconf.dev/configmaps": "app"}},
                    "status": {"phase": "Pending"},
                })  # fmt: skip
            key = work / "signing.pem"
            make_key(key)
            operator = OperatorProcess(
                kubeconfig=emulator.kubeconfig, key_file=key, workdir=work,
                extra=("--log-level", "debug"),
            ).start()  # fmt: skip
            time.sleep(args.seconds)
            operator.stop()
            for line in operator.logs().splitlines():
                if "frozen" in line:
                    print(re.sub(r"^ts=\S+ ", "", line))


if __name__ == "__main__":
    main()
