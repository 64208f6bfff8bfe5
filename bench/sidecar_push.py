"""Benchmark: a push received by the sidecar until every local client has ACKed it.

Runs the real ``hotconf-sidecar`` process and N real client processes (raw wire protocol v1
through ``hotconf_wire.protocol``, each ACKing every config at once), then times ``POST /v2/push``
over a kept-alive HTTP connection, from the request sent to the answer listing every ACK. Bodies
are signed before the clock starts. Also reports the idle sidecar's resident memory (VmRSS,
RssAnon and RssFile from /proc), at start and after the runs.

    .venv/bin/python bench/sidecar_push.py             # 1 KiB and 1 MiB, 1 and 8 clients
    .venv/bin/python bench/sidecar_push.py --quick     # fewer pushes, for a smoke run
    .venv/bin/python bench/sidecar_push.py --small-only --callgrind   # instructions per push
    .venv/bin/python bench/sidecar_push.py --small-only --profile PATH   # cProfile of the sidecar

With ``--callgrind`` the sidecar runs under valgrind's callgrind and each run also reports the
sidecar's instructions per push (counted from the first push after the warm-up to the last):
on a shared machine a steadier figure than CPU time, and slower (about 50x) to get.

Results go to ``docs/performance.md`` ("Sidecar") by hand, with the machine they came from.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from hotconf_wire.envelope import (
    SIGNATURE_HEADER,
    PodRef,
    Push,
    encode_payload,
    encode_signature,
)
from hotconf_wire.protocol import ConfigSnapshot, compute_revision

POD = PodRef("bench", "bench-0", "00000000-0000-4000-8000-00000000beef")
SIDECAR = Path(sys.executable).with_name("hotconf-sidecar")

CLIENT = r"""
import socket, sys
from hotconf_wire import protocol as p
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.connect(sys.argv[1])
sock.sendall(p.encode(p.Hello(client="bench-" + sys.argv[2], pid=__import__("os").getpid())))
while (message := p.recv_message(sock)) is not None:
    if isinstance(message, p.ConfigSnapshot):
        sock.sendall(p.encode(p.Ack(message.namespace, message.name, message.revision)))
"""


def callgrind_control(action: str, pid: int) -> None:
    subprocess.run(["callgrind_control", action, str(pid)], check=True, capture_output=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time ``pid`` has used so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory(pid: int) -> dict[str, int]:
    """VmRSS, RssAnon and RssFile of ``pid`` in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile"):
            fields[key] = int(value.split()[0])
    return fields


class Bench:
    def __init__(self, tmp: Path, *, callgrind: bool = False, profile: str | None = None) -> None:
        self.tmp = tmp
        self.callgrind = callgrind
        self.key = Ed25519PrivateKey.generate()
        self.sequence = time.time_ns()
        self.port = free_port()
        self.socket = tmp / "hotconf.sock"
        pem = self.key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        env = os.environ | {
            "HOTCONF_POD_NAMESPACE": POD.namespace,
            "HOTCONF_POD_NAME": POD.name,
            "HOTCONF_POD_UID": POD.uid,
            "HOTCONF_OPERATOR_PUBLIC_KEY": pem.decode(),
            "HOTCONF_LISTEN": f"127.0.0.1:{self.port}",
            "HOTCONF_SOCKET": str(self.socket),
            "HOTCONF_STATE_DIR": str(tmp / "state"),
            "HOTCONF_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        }
        command = [str(SIDECAR)]
        if profile:  # written when the sidecar exits (SIGTERM at the end)
            command = [sys.executable, "-m", "cProfile", "-o", profile, "-m", "hotconf_sidecar"]
        if callgrind:
            out = f"--callgrind-out-file={tmp / 'callgrind.out'}"
            command = ["valgrind", "--tool=callgrind", out, *command]
        self.proc = subprocess.Popen(command, env=env)
        self.clients: list[subprocess.Popen[bytes]] = []
        deadline = time.monotonic() + (300 if callgrind else 20)
        while True:
            try:
                if self.get("/readyz")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit("the sidecar did not become ready")
            time.sleep(0.05)
        self.http = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def get(self, path: str) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def set_clients(self, count: int) -> None:
        while len(self.clients) > count:
            client = self.clients.pop()
            client.terminate()
            client.wait()
        while len(self.clients) < count:
            self.clients.append(
                subprocess.Popen(
                    [sys.executable, "-c", CLIENT, str(self.socket), str(len(self.clients))]
                )
            )
        deadline = time.monotonic() + 20
        while (
            f"hotconf_sidecar_clients_connected {float(count)}".encode()
            not in self.get("/metrics")[1]
        ):
            if time.monotonic() > deadline:
                raise SystemExit(f"{count} clients did not connect")
            time.sleep(0.05)

    def body(self, size: int, n: int) -> tuple[bytes, str]:
        value = (f"{n:012d}" * (size // 12 + 1))[: size - len("app.yaml") - 16]
        data = {"app.yaml": value}
        snap = ConfigSnapshot(POD.namespace, "app", compute_revision(data), data, {})
        self.sequence += 1
        push = Push(pod=POD, snapshot=snap, sequence=self.sequence, expires=time.time() + 3600)
        payload = encode_payload(push)
        return payload, encode_signature(self.key.sign(payload))

    def push(self, signed: tuple[bytes, str]) -> dict[str, object]:
        body, signature = signed
        self.http.request(
            "POST",
            "/v2/push",
            body=body,
            headers={"Content-Type": "application/json", SIGNATURE_HEADER: signature},
        )
        response = self.http.getresponse()
        answer: dict[str, object] = json.loads(response.read())
        if response.status != 200:
            raise SystemExit(f"push refused: {answer}")
        return answer

    def run(self, *, size: int, clients: int, pushes: int, warmup: int) -> dict[str, float]:
        self.set_clients(clients)
        bodies = [self.body(size, n) for n in range(warmup + pushes)]
        timings = []
        cpu_sidecar = cpu_clients = 0.0
        for n, body in enumerate(bodies):
            if n == warmup:
                if self.callgrind:
                    callgrind_control("--zero", self.proc.pid)
                cpu_sidecar = cpu_seconds(self.proc.pid)
                cpu_clients = sum(cpu_seconds(c.pid) for c in self.clients)
            started = time.perf_counter()
            answer = self.push(body)
            elapsed = time.perf_counter() - started
            results = [c["result"] for c in answer["clients"]]  # type: ignore[attr-defined]
            if results != ["ack"] * clients:
                raise SystemExit(f"not every client ACKed: {results}")
            if n >= warmup:
                timings.append(elapsed * 1000)
        cpu_sidecar = cpu_seconds(self.proc.pid) - cpu_sidecar
        cpu_clients = sum(cpu_seconds(c.pid) for c in self.clients) - cpu_clients
        instructions = 0.0
        if self.callgrind:
            callgrind_control("--dump", self.proc.pid)
            dumps = sorted(self.tmp.glob("callgrind.out.*"), key=lambda p: p.stat().st_mtime_ns)
            instructions = int(dumps[-1].read_text().split("summary:")[1].split()[0]) / pushes
        timings.sort()
        return {
            "instructions": instructions,
            "sidecar_cpu_ms": cpu_sidecar * 1000 / pushes,
            "client_cpu_ms": cpu_clients * 1000 / pushes / clients,
            "p50_ms": statistics.median(timings),
            "p99_ms": timings[max(0, round(len(timings) * 0.99) - 1)],
            "max_ms": timings[-1],
            "n": len(timings),
        }

    def close(self) -> None:
        self.set_clients(0)
        self.http.close()
        self.proc.terminate()
        self.proc.wait(120 if self.callgrind else 15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer pushes")
    parser.add_argument("--small-only", action="store_true", help="1 KiB configs only")
    parser.add_argument("--pushes", type=int, help="pushes per 1 KiB run (default 500)")
    parser.add_argument(
        "--callgrind",
        action="store_true",
        help="run the sidecar under valgrind's callgrind and count its instructions per push",
    )
    parser.add_argument("--profile", metavar="PATH", help="write a cProfile of the sidecar")
    args = parser.parse_args()
    small, large = (50, 20) if args.quick else (500, 100)
    small = args.pushes or small
    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(Path(tmp), callgrind=args.callgrind, profile=args.profile)
        try:
            time.sleep(1.0)
            idle = memory(bench.proc.pid)
            rows = []
            sizes = [(1024, "1 KiB", small), (1024 * 1024, "1 MiB", large)]
            for size, label, pushes in sizes[:1] if args.small_only else sizes:
                for clients in (1, 8):
                    result = bench.run(size=size, clients=clients, pushes=pushes, warmup=10)
                    rows.append((label, clients, result))
            bench.set_clients(0)
            time.sleep(1.0)
            after = memory(bench.proc.pid)
        finally:
            bench.close()
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    print(f"machine: {cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(
        "| config | clients | pushes | p50 (ms) | p99 (ms) | max (ms) "
        "| sidecar CPU per push (ms) | CPU per client per push (ms) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for label, clients, r in rows:
        print(
            f"| {label} | {clients} | {r['n']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} "
            f"| {r['max_ms']:.2f} | {r['sidecar_cpu_ms']:.2f} | {r['client_cpu_ms']:.2f} |"
        )
    if args.callgrind:
        for label, clients, r in rows:
            print(
                f"sidecar instructions per push, {label}, {clients} clients: "
                f"{r['instructions']:,.0f}"
            )
    for name, mem in (("idle after start", idle), ("idle after the runs", after)):
        print(
            f"sidecar RSS {name}: {mem['VmRSS'] / 1024:.1f} MiB "
            f"(anon {mem['RssAnon'] / 1024:.1f}, file {mem['RssFile'] / 1024:.1f})"
        )


if __name__ == "__main__":
    main()
