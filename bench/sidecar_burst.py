"""A burst of connections to the sidecar: N clients connect at once and each asks ``/healthz``.

    .venv/bin/python bench/sidecar_burst.py [--clients 200] [--rounds 5]

Starts the real ``hotconf-sidecar`` (``tests/support/sidecar_harness.SidecarProcess``), then per
round opens ``--clients`` non-blocking TCP connections to its HTTP port in one go (as many
clients would at the same moment), sends each ``GET /healthz`` as soon as it is connected, and
times from the first ``connect`` to the last answer, and to each answer. A connection the
listen queue cannot hold has its SYN dropped and retried by the kernel 1 s later, which shows
as a maximum of about 1 s. Run another tree's sidecar by putting its ``sidecar`` and ``wire``
folders first on ``PYTHONPATH``. Results go to ``docs/performance.md`` by hand.
"""

from __future__ import annotations

import argparse
import os
import selectors
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))

from sidecar_harness import SidecarProcess, Signer

REQUEST = b"GET /healthz HTTP/1.1\r\nHost: sidecar\r\nConnection: close\r\n\r\n"


def burst(port: int, clients: int) -> list[float]:
    """Seconds from the burst's start to each client's answer."""
    selector = selectors.DefaultSelector()
    start = time.monotonic()
    for _ in range(clients):
        new = socket.socket()
        new.setblocking(False)
        new.connect_ex(("127.0.0.1", port))
        selector.register(new, selectors.EVENT_WRITE, "connecting")
    done: list[float] = []
    while len(done) < clients:
        for key, _ in selector.select(timeout=30):
            fileobj = key.fileobj
            assert isinstance(fileobj, socket.socket)
            s = fileobj
            if key.data == "connecting":
                s.send(REQUEST)
                selector.modify(s, selectors.EVENT_READ, "asked")
            else:
                if s.recv(4096).startswith(b"HTTP/1.1 200"):
                    done.append(time.monotonic() - start)
                selector.unregister(s)
                s.close()
    selector.close()
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sidecar = SidecarProcess(Path(tmp), Signer()).start()
        try:
            for i in range(1, args.rounds + 1):
                times = burst(sidecar.port, args.clients)
                print(
                    f"round {i}: {args.clients} clients, answer p50 "
                    f"{statistics.median(times) * 1e3:.1f} ms, last {max(times) * 1e3:.1f} ms, "
                    f"{sum(t > 0.5 for t in times)} after 0.5 s",
                    flush=True,
                )
                time.sleep(0.5)
        finally:
            sidecar.stop()
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
