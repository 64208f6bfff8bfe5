"""End-to-end rollout benchmark: from the API write to every worker running the new revision.

    .venv/bin/python bench/e2e_rollout.py [--pods 1,10,100] [--rounds 30] [--fanout 1000]

Part 1 (real processes): the emulator, ``hotconf-operator``, and per pod a real
``hotconf-sidecar`` on its own 127.0.0.x plus a worker built on ``hotconf.run`` that appends
``time.time()`` to a report file when its task starts on a revision. Each round PATCHes the
ConfigMap over HTTP (merge patch, on a kept-alive connection, as a controller writing the
ConfigMap would) and waits until every worker reports the new revision; the latency is the last
worker's time minus the time just before the PATCH was sent (one machine, one clock). Every
worker also appends its line to one shared file, and the wait reads only what was appended to it
since the last look, every 2 ms: the benchmark's own polling must not take CPU from the processes
it measures (polling one file per pod took 35-50 ms of CPU per 100-pod round). Each round also
reports the CPU the operator, all sidecars, all workers and the emulator used in it (from
``/proc/<pid>/task/*/schedstat``, summed over threads, read before the PATCH and after the
0.1 s pause that ends the round), medians printed per pod count.

The first ``--warmup`` rounds (3) after the pods started are run, printed apart and not counted:
each process has then handled only its first config, and CPython 3.11 specializes a function's
bytecode only after it has run a few times, so with 200 fresh processes the first rounds of 100
pods take 20-40 ms more (and more CPU) than the later ones, as measured; lazy imports and first
allocations on each process's push path add to it. A pod pays this on its first few changes
after it starts; the steady state is what the counted rounds measure. ``--warmup 0``
counts them.

Part 2 (fan-out): ``--fanout`` Pod objects whose "sidecars" are aiohttp endpoints in this
process on 127.0.0.x (each verifies the Ed25519 signature and answers like a sidecar with no
clients); time from the PATCH to the last endpoint having verified its push. The operator's
CPU per rollout is read from ``/proc/<pid>/task/*/schedstat`` (nanoseconds of CPU per thread,
summed; it holds while other jobs load the machine): up to the moment the last push arrived
("to last push", read by the endpoint that got it), and for the whole round (status PATCH,
Event, the watch event of our own status write, idle work included; the round lasts until the
next PATCH). Then 100 ConfigMaps are created and the operator's resident memory (VmRSS) is read
with every pod and ConfigMap indexed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import http.client
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))

from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hotconf_e2e import Api, OperatorProcess, make_key, pods
from kube_control_plane import AdminClient
from kube_emulator._process import EmulatorProcess


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def create_cm(api: Api, name: str, data: dict[str, str]) -> None:
    api.request(
        "POST",
        "/api/v1/namespaces/default/configmaps",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "labels": {"hotconf.dev/enabled": "true"}},
            "data": data,
        },
    )


class Writer:
    """PATCHes ConfigMaps over one kept-alive HTTP connection (reopened if the server closed it)."""

    def __init__(self, url: str) -> None:
        host, _, port = url.split("//", 1)[1].partition(":")
        self.host, self.port = host, int(port)
        self.conn: http.client.HTTPConnection | None = None

    def patch_cm(self, name: str, patch: dict[str, object], namespace: str = "default") -> None:
        body = json.dumps(patch).encode()
        path = f"/api/v1/namespaces/{namespace}/configmaps/{name}"
        headers = {"Content-Type": "application/merge-patch+json"}
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
            try:
                self.conn.request("PATCH", path, body, headers)
                resp = self.conn.getresponse()
                raw = resp.read()
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
                continue
            if resp.status != 200:
                raise RuntimeError(f"PATCH {path}: HTTP {resp.status}: {raw[:200]!r}")
            return

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


class Reports:
    """Follows the workers' shared report file (``--shared-report``), reading only what was
    appended since the last look: one read per poll however many pods there are."""

    def __init__(self, path: Path, pods: list[str]) -> None:
        self.path = path
        self.offset = 0
        self.last: dict[str, dict[str, object]] = {pod: {} for pod in pods}

    def poll(self) -> None:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return
        whole = chunk[: chunk.rfind(b"\n") + 1]  # a line being written is read next time
        self.offset += len(whole)
        for raw in whole.splitlines():
            line = json.loads(raw)
            self.last[str(line["pod"])] = line

    def wait_value(self, value: str, timeout: float) -> list[dict[str, object]]:
        """Poll until every worker's latest line reports ``value``."""
        deadline = time.monotonic() + timeout
        while True:
            self.poll()
            pending = [p for p, line in self.last.items() if line.get("value") != value]
            if not pending:
                return list(self.last.values())
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(pending)} workers did not report value {value}")
            time.sleep(0.002)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_ns(pid: int) -> int:
    """CPU used so far by every live thread of ``pid``, in nanoseconds (exited threads not
    counted: the operator's threads live as long as it does)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def cpu_of(pids: list[int]) -> int:
    """:func:`cpu_ns` summed over processes (one that is gone counts nothing)."""
    total = 0
    for pid in pids:
        try:
            total += cpu_ns(pid)
        except FileNotFoundError:
            continue
    return total


def real_pods(
    emu: EmulatorProcess, work: Path, count: int, rounds: int, warmup: int = 0
) -> tuple[list[float], dict[str, list[float]], list[float]]:
    """Latency of each round, the CPU each kind of process used in it (from just before the
    PATCH to the end of the pause after the round: the ACKs and status writes included), and
    the latency of the ``warmup`` rounds run first and not counted."""
    api = Api(AdminClient(emu.url), "default")
    name = f"bench{count}"
    create_cm(api, name, {"value": "0"})
    pub = make_key(work / f"key{count}.pem")
    op = OperatorProcess(
        kubeconfig=emu.kubeconfig, key_file=work / f"key{count}.pem", workdir=work,
        extra=("--reconcile-interval", "60"),
    ).start()  # fmt: skip
    latencies: list[float] = []
    cpu: dict[str, list[float]] = {}
    writer = Writer(emu.url)
    try:
        shared = work / f"{name}.reports.jsonl"
        with pods(
            api, work / name, count, configmap=name, public_key_pem=pub, shared_report=shared
        ) as ps:
            reports = Reports(shared, [p.name for p in ps])
            reports.wait_value("0", timeout=120)
            time.sleep(1.0)  # let the first rollout's status and Event writes settle
            assert op.proc is not None
            kinds = {
                "operator": [op.proc.pid],
                "sidecars": [p.sidecar.pid for p in ps if p.sidecar is not None],
                "workers": [p.worker.pid for p in ps if p.worker is not None],
                "emulator": [emu.pid],
            }
            warm: list[float] = []
            for i in range(1, warmup + rounds + 1):
                value = str(i)
                before = {kind: cpu_of(pids) for kind, pids in kinds.items()}
                t0 = time.time()
                writer.patch_cm(name, {"data": {"value": value}})
                last = reports.wait_value(value, timeout=60)
                took = max(float(r["t"]) for r in last) - t0  # type: ignore[arg-type]
                time.sleep(0.1)
                if i <= warmup:
                    warm.append(took)
                    continue
                latencies.append(took)
                for kind, pids in kinds.items():
                    cpu.setdefault(kind, []).append((cpu_of(pids) - before[kind]) / 1e9)
    finally:
        writer.close()
        op.stop()
    return latencies, cpu, warm


class FakeSidecars:
    """Many sidecar endpoints in one process: verify, record the time, answer like a sidecar."""

    def __init__(self, public_pem: bytes) -> None:
        key = serialization.load_pem_public_key(public_pem)
        assert isinstance(key, Ed25519PublicKey)
        self.key = key
        self.seen: dict[str, tuple[str, float]] = {}  # pod -> (revision, time)
        self.held: dict[str, str] = {}
        self.runners: list[web.AppRunner] = []
        # the round being waited for: pods still to get a revision other than `old`, and the
        # operator's pid whose CPU is read when the last of them arrives
        self.old = ""
        self.missing: set[str] = set()
        self.operator_pid = 0
        self.cpu_at_last = 0

    def expect(self, old: str, pods: set[str], operator_pid: int) -> None:
        self.old, self.missing, self.operator_pid = old, set(pods), operator_pid

    async def push(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        payload = base64.b64decode(body["payload"])
        self.key.verify(base64.b64decode(body["signature"]), payload)
        push = json.loads(payload)
        pod = push["pod"]["name"]
        self.seen[pod] = (push["revision"], time.time())
        self.held[pod] = push["revision"]
        if self.missing and push["revision"] != self.old:
            self.missing.discard(pod)
            if not self.missing:
                self.cpu_at_last = cpu_ns(self.operator_pid)
        return web.json_response(
            {"status": "applied", "revision": push["revision"], "sequence": push["sequence"],
             "clients": []}
        )  # fmt: skip

    async def state(self, request: web.Request) -> web.Response:
        pod = request.match_info.get("pod", "")
        revision = self.held.get(request.app["pod"])
        cms = [] if revision is None else [
            {"namespace": "default", "name": "fanout", "revision": revision, "sequence": 0,
             "clients": []}
        ]  # fmt: skip
        return web.json_response({"pod": {"name": pod}, "configmaps": cms})

    async def start(self, pod: str, host: str) -> int:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app["pod"] = pod
        app.router.add_post("/v1/push", self.push)
        app.router.add_get("/v1/state", self.state)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, 0)
        await site.start()
        self.runners.append(runner)
        return int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    async def stop(self) -> None:
        for runner in self.runners:
            await runner.cleanup()


async def fanout(emu: EmulatorProcess, work: Path, count: int, rounds: int) -> dict[str, float]:
    api = Api(AdminClient(emu.url), "default")
    pub = make_key(work / "fanout.pem")
    fakes = FakeSidecars(pub.encode())
    create_cm(api, "fanout", {"value": "0"})
    for i in range(count):
        host = f"127.0.{1 + i // 250}.{1 + i % 250}"
        port = await fakes.start(f"pod-{i}", host)
        await asyncio.to_thread(
            api.create_pod,
            {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": f"pod-{i}", "annotations": {
                    "hotconf.dev/configmaps": "fanout", "hotconf.dev/port": str(port)}},
                "status": {"phase": "Running", "podIP": host},
            },
        )  # fmt: skip
    op = OperatorProcess(
        kubeconfig=emu.kubeconfig, key_file=work / "fanout.pem", workdir=work,
        extra=("--reconcile-interval", "600", "--push-concurrency", "256"),
    ).start()  # fmt: skip
    result: dict[str, float] = {}
    try:
        deadline = time.monotonic() + 120
        while len(fakes.seen) < count and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        assert len(fakes.seen) == count, f"only {len(fakes.seen)} pods got the first config"
        assert op.proc is not None
        pid = op.proc.pid
        await asyncio.sleep(1.0)  # the first rollout's status write and its watch event
        times = []
        cpu_last: list[float] = []
        cpu_round: list[float] = []
        for i in range(1, rounds + 1):
            first = next(iter(fakes.seen.values()))[0]
            fakes.expect(first, set(fakes.seen), pid)
            cpu0 = cpu_ns(pid)
            t0 = time.time()
            await asyncio.to_thread(api.patch_cm, "fanout", {"data": {"value": str(i)}})
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                revs = {rev for rev, _ in fakes.seen.values()}
                if len(revs) == 1 and first not in revs:
                    break
                await asyncio.sleep(0.005)
            times.append(max(t for _, t in fakes.seen.values()) - t0)
            await asyncio.sleep(0.5)
            cpu_last.append((fakes.cpu_at_last - cpu0) / 1e9)
            cpu_round.append((cpu_ns(pid) - cpu0) / 1e9)
        result["fanout_p50"] = statistics.median(times)
        result["fanout_max"] = max(times)
        result["cpu_last_p50"] = statistics.median(cpu_last)
        result["cpu_round_p50"] = statistics.median(cpu_round)
        result["cpu_round_max"] = max(cpu_round)
        for n in range(100):
            await asyncio.to_thread(
                create_cm, api, f"extra-{n}", {"value": str(n), "k": "x" * 1000}
            )
        await asyncio.sleep(3)
        assert op.proc is not None
        result["rss_mib"] = rss_mib(op.proc.pid)
    finally:
        op.stop()
        await fakes.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", default="1,10,100")
    parser.add_argument("--rounds", type=int, default=30, help="rounds per pod count")
    parser.add_argument(
        "--warmup",
        type=int,
        default=3,
        help="rounds run first and reported apart (default 3; see the module docstring)",
    )
    parser.add_argument("--fanout", type=int, default=1000)
    parser.add_argument("--fanout-rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for count in [int(n) for n in args.pods.split(",") if n]:
            (work / f"emu{count}").mkdir()
            with EmulatorProcess(workdir=work / f"emu{count}") as emu:
                lat, cpu, warm = real_pods(emu, work, count, args.rounds, args.warmup)
                p50 = statistics.median(lat)
                used = "  ".join(
                    f"{kind} {statistics.median(values) * 1e3:.1f}" for kind, values in cpu.items()
                )
                print(
                    f"{count:>4} pods  rounds {len(lat):>3}  p50 {p50 * 1e3:7.1f} ms"
                    f"  p99 {percentile(lat, 99) * 1e3:7.1f} ms  max {max(lat) * 1e3:7.1f} ms"
                    f"  CPU per round p50 (ms): {used}",
                    flush=True,
                )
                if warm:
                    print(
                        f"{'':>4}       warm-up rounds (not counted): "
                        + " ".join(f"{w * 1e3:.1f}" for w in warm)
                        + " ms",
                        flush=True,
                    )
        if args.fanout:
            (work / "emuf").mkdir()
            with EmulatorProcess(workdir=work / "emuf") as emu:
                r = asyncio.run(fanout(emu, work, args.fanout, args.fanout_rounds))
                print(
                    f"fan-out {args.fanout} in-process sidecars: p50 {r['fanout_p50'] * 1e3:.0f} ms"
                    f"  max {r['fanout_max'] * 1e3:.0f} ms; operator RSS with {args.fanout} pods "
                    f"and 101 ConfigMaps indexed: {r['rss_mib']:.0f} MiB",
                    flush=True,
                )
                print(
                    f"operator CPU per {args.fanout}-pod rollout: to last push p50 "
                    f"{r['cpu_last_p50'] * 1e3:.1f} ms, whole round p50 "
                    f"{r['cpu_round_p50'] * 1e3:.1f} ms, max {r['cpu_round_max'] * 1e3:.1f} ms",
                    flush=True,
                )
    _ = urllib.request  # the harness talks HTTP through urllib


if __name__ == "__main__":
    main()
