"""End-to-end rollout benchmark: from the API write to every worker running the new revision.

    .venv/bin/python bench/e2e_rollout.py [--api emulator|real|both] [--pods 1,10,100]
        [--rounds 30] [--fanout 1000] [--mode thread|process] [--trace]

Part 1 (real processes), on each API server ``--api`` names (both by default, the emulator
first; ``bench/kube_apis.py``): the emulator (``kube_emulator``, plain HTTP, a fresh process per
pod count), or a real kube-apiserver and etcd (``kube_control_plane.ControlPlane`` with audit
logging off, a cost a cluster may or may not have; the chart installed once with helm, webhook
off; a namespace per pod count; the operator runs as the chart's ServiceAccount with a
TokenRequest token). Then ``hotconf-operator``, and per pod a Pod object (status written
through ``/status``), a real ``hotconf-sidecar`` on its own 127.0.0.x plus a worker built on
``hotconf.run`` that appends ``time.time()`` to a report file when its task starts on a
revision. Each round PATCHes the ConfigMap (merge patch, on a kept-alive connection as the
admin, as a controller writing the ConfigMap would: plain HTTP to the emulator, HTTPS with the
admin client certificate to the real API server) and waits until every worker reports the new
revision; the latency is the last worker's time minus the time just before the PATCH was sent
(one machine, one clock). Every worker also appends its line to one shared file, and the wait
reads only what was appended to it since the last look, every 2 ms: the benchmark's own polling
must not take CPU from the processes it measures (polling one file per pod took 35-50 ms of CPU
per 100-pod round). Each round also reports the CPU the operator, all sidecars, all workers and
the API server's processes (the emulator; kube-apiserver and etcd) used in it (from
``/proc/<pid>/task/*/schedstat``, summed over threads, read before the PATCH and after the
0.1 s pause that ends the round), medians printed per pod count.

The floor, in the same run and on the same API: right before each round the benchmark PATCHes
an unlabelled twin ConfigMap (hotconf ignores it) on the same kept-alive connection and times
it to its own raw watch of that ConfigMap (a separate kept-alive connection,
``?watch=true&fieldSelector=metadata.name=NAME&resourceVersion=RV``, read by a thread that takes
the time as soon as the MODIFIED event's line is read); then it pauses 50 ms and runs the
round. hotconf's own share is computed per round, the round's latency minus that round's floor,
and its p50 and p99 are printed (not the median minus the median). A second raw watch, of the
ConfigMap the pods follow, times the round's own PATCH to its event ("same-PATCH watch"): the
event's arrival while hotconf's processes compete for the two cores; it is printed, not
subtracted.

The first ``--warmup`` rounds (3) after the pods started are run, printed apart and not counted:
each process has then handled only its first config, and CPython 3.11 specializes a function's
bytecode only after it has run a few times, so with 200 fresh processes the first rounds of 100
pods take 20-40 ms more (and more CPU) than the later ones, as measured; lazy imports and first
allocations on each process's push path add to it. A pod pays this on its first few changes
after it starts; the steady state is what the counted rounds measure. ``--warmup 0``
counts them.

Part 2 (fan-out, on the emulator only; skipped with ``--api real``): ``--fanout`` Pod objects
whose "sidecars" are aiohttp endpoints in this
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
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for bench.kube_apis

from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hotconf_e2e import Api, OperatorProcess, make_key, pods
from kube_control_plane import AdminClient
from kube_emulator._process import EmulatorProcess

from bench.kube_apis import Emulator, RawWatch, RealApi, Target, Writer
from bench.trace_breakdown import breakdown, print_breakdown, read_trace
from hotconf_wire.envelope import SIGNATURE_HEADER, decode_payload, decode_signature


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def create_cm(api: Api, name: str, data: dict[str, str], *, labelled: bool = True) -> None:
    labels = {"hotconf.dev/enabled": "true"} if labelled else {}
    api.request(
        "POST",
        f"/api/v1/namespaces/{api.namespace}/configmaps",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "labels": labels},
            "data": data,
        },
    )


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


@dataclass
class PodRun:
    """One pod count's rounds on one API server; times in seconds."""

    latency: list[float]  # PATCH sent -> last worker's task running the new revision
    floor: list[float]  # PATCH of the unlabelled twin, right before -> its raw watch read the event
    same: list[float]  # the round's own PATCH -> the benchmark's raw watch of it read the event
    cpu: dict[str, list[float]]  # CPU per round by kind of process
    warm: list[float]  # latency of the warm-up rounds (not counted)
    #: With --trace: the trace file, and each counted round's revision -> its PATCH (monotonic ns)
    trace: Path | None = None
    starts: dict[str, int] = field(default_factory=dict)

    @property
    def share(self) -> list[float]:
        """hotconf's own share, per round: latency minus that round's floor."""
        return [lat - fl for lat, fl in zip(self.latency, self.floor, strict=True)]


def real_pods(
    target: Target,
    work: Path,
    count: int,
    rounds: int,
    warmup: int,
    tag: str,
    *,
    mode: str,
    trace: bool,
) -> PodRun:
    """Run ``warmup + rounds`` rounds with ``count`` real pods on ``target``.

    Each round first PATCHes the unlabelled twin ConfigMap (which hotconf ignores) and waits
    for its raw watch to see the event (the round's ``floor``), pauses 50 ms, then PATCHes the
    ConfigMap the pods follow and waits for every worker; a raw watch of that ConfigMap notes
    when the same PATCH's event reached the benchmark (``same``: while hotconf's processes
    compete for the CPU). CPU is read from just before the second PATCH to the end of the
    0.1 s pause after the round (the ACKs and status writes included). With ``trace`` every
    process started here appends the rollout trace to one file (``HOTCONF_TRACE_FILE``)."""
    api, namespace = target.api, target.namespace
    trace_file = work / f"{tag}.trace.jsonl" if trace else None
    if trace_file is not None:
        os.environ["HOTCONF_TRACE_FILE"] = str(trace_file)  # the harness passes os.environ on
    name, twin = f"bench{count}", f"bench{count}-floor"
    create_cm(api, name, {"value": "0"})
    create_cm(api, twin, {"value": "0"}, labelled=False)
    key = work / f"key-{tag}.pem"
    pub = make_key(key)
    op = OperatorProcess(
        kubeconfig=target.operator_kubeconfig, key_file=key, workdir=work,
        log_name=f"operator-{tag}.log", extra=("--reconcile-interval", "60"),
    ).start()  # fmt: skip
    run = PodRun([], [], [], {}, [], trace=trace_file)
    writer = Writer(target.connect)
    rv = {cm: api.get_cm(cm)["metadata"]["resourceVersion"] for cm in (name, twin)}
    watch = RawWatch(target.connect, namespace, name, rv[name])
    floor_watch = RawWatch(target.connect, namespace, twin, rv[twin])
    try:
        shared = work / f"{tag}.reports.jsonl"
        with pods(
            api, work / tag, count, configmap=name, public_key_pem=pub, shared_report=shared,
            worker_mode=mode,
        ) as ps:  # fmt: skip
            reports = Reports(shared, [p.name for p in ps])
            reports.wait_value("0", timeout=120)
            time.sleep(1.0)  # let the first rollout's status and Event writes settle
            assert op.proc is not None
            kinds = {
                "operator": [op.proc.pid],
                "sidecars": [p.sidecar.pid for p in ps if p.sidecar is not None],
                "workers": [p.worker.pid for p in ps if p.worker is not None],
                **target.pids,
            }
            for i in range(1, warmup + rounds + 1):
                value = str(i)
                t1 = time.time()
                writer.patch_cm(namespace, twin, {"data": {"value": value}})
                floor = floor_watch.wait(value) - t1
                time.sleep(0.05)
                before = {kind: cpu_of(pids) for kind, pids in kinds.items()}
                t0_mono = time.monotonic_ns()
                t0 = time.time()
                writer.patch_cm(namespace, name, {"data": {"value": value}})
                last = reports.wait_value(value, timeout=60)
                took = max(float(r["t"]) for r in last) - t0  # type: ignore[arg-type]
                same = watch.wait(value) - t0
                time.sleep(0.1)
                if i <= warmup:
                    run.warm.append(took)
                    continue
                run.latency.append(took)
                run.starts[str(last[0]["revision"])] = t0_mono
                run.floor.append(floor)
                run.same.append(same)
                for kind, pids in kinds.items():
                    run.cpu.setdefault(kind, []).append((cpu_of(pids) - before[kind]) / 1e9)
    finally:
        watch.close()
        floor_watch.close()
        writer.close()
        op.stop()
        os.environ.pop("HOTCONF_TRACE_FILE", None)
    return run


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
        payload = await request.read()
        self.key.verify(decode_signature(request.headers.get(SIGNATURE_HEADER)), payload)
        push = decode_payload(payload)
        pod, revision = push.pod.name, push.snapshot.revision
        self.seen[pod] = (revision, time.time())
        self.held[pod] = revision
        if self.missing and revision != self.old:
            self.missing.discard(pod)
            if not self.missing:
                self.cpu_at_last = cpu_ns(self.operator_pid)
        return web.json_response(
            {"status": "applied", "revision": revision, "sequence": push.sequence, "clients": []}
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
        app.router.add_post("/v2/push", self.push)
        app.router.add_get("/v2/state", self.state)
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
                "metadata": {"name": f"pod-{i}", "labels": {"hotconf.dev/inject": "true"},
                             "annotations": {"hotconf.dev/configmaps": "fanout",
                                             "hotconf.dev/port": str(port)}},
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


#: The targets each API's table is checked against: (pods, column, percentile, limit in ms).
TARGETS: dict[str, list[tuple[int, str, int, float]]] = {
    "emulator": [(1, "latency", 50, 5.0), (1, "latency", 99, 10.0), (100, "latency", 99, 150.0)],
    "real": [(1, "share", 50, 2.5), (100, "latency", 99, 200.0), (100, "share", 99, 200.0)],
}


def ms(values: list[float], p: int) -> float:
    return percentile(values, p) * 1e3


def print_table(label: str, runs: dict[int, PodRun]) -> None:
    print(f"\n{label}", flush=True)
    print(
        "pods rounds |  p50 ms  p99 ms  max ms | floor p50  p99 | share p50  p99 "
        "| same-PATCH watch p50  p99 | CPU per round p50 (ms)"
    )
    for count, run in runs.items():
        used = "  ".join(
            f"{kind} {statistics.median(values) * 1e3:.1f}" for kind, values in run.cpu.items()
        )
        print(
            f"{count:>4} {len(run.latency):>6} | {ms(run.latency, 50):7.1f} "
            f"{ms(run.latency, 99):7.1f} {max(run.latency) * 1e3:7.1f} "
            f"| {ms(run.floor, 50):9.2f} {ms(run.floor, 99):5.2f} "
            f"| {ms(run.share, 50):9.1f} {ms(run.share, 99):5.1f} "
            f"| {ms(run.same, 50):20.2f} {ms(run.same, 99):5.2f} | {used}",
            flush=True,
        )
        if run.warm:
            print(
                "     warm-up rounds (not counted): "
                + " ".join(f"{w * 1e3:.1f}" for w in run.warm)
                + " ms",
                flush=True,
            )


def print_targets(api: str, runs: dict[int, PodRun]) -> None:
    for count, column, p, limit in TARGETS[api]:
        if count not in runs:
            continue
        values = runs[count].latency if column == "latency" else runs[count].share
        got = ms(values, p)
        verdict = "met" if got <= limit else f"MISSED by {got - limit:.1f} ms"
        what = "write -> application" if column == "latency" else "hotconf's share"
        print(f"  target {what}, {count} pod(s), p{p} <= {limit:g} ms: {got:.1f} ms, {verdict}")


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--api",
        choices=("emulator", "real", "both"),
        default="both",
        help="the API server(s) to measure on (default both: the emulator first)",
    )
    parser.add_argument("--pods", default="1,10,100", help="pod counts, comma-separated")
    parser.add_argument("--rounds", type=int, default=30, help="rounds per pod count")
    parser.add_argument(
        "--warmup",
        type=int,
        default=3,
        help="rounds run first and reported apart (default 3; see the module docstring)",
    )
    parser.add_argument(
        "--fanout",
        type=int,
        default=1000,
        help="pods of the fan-out part, on the emulator only (0 skips it; default 1000)",
    )
    parser.add_argument("--fanout-rounds", type=int, default=5)
    parser.add_argument(
        "--mode",
        choices=("thread", "process"),
        default="thread",
        help="the workers' hotconf.run mode (default thread)",
    )
    parser.add_argument(
        "--trace",
        action="store_true",
        help="trace every hop of each rollout (HOTCONF_TRACE_FILE) and print where the time goes",
    )
    args = parser.parse_args()
    counts = [int(n) for n in args.pods.split(",") if n]
    apis = ["emulator", "real"] if args.api == "both" else [args.api]
    servers: dict[str, type[Emulator | RealApi]] = {"emulator": Emulator, "real": RealApi}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for api in apis:
            print(f"\n[{api}] load average before: {load()}", flush=True)
            runs: dict[int, PodRun] = {}
            with servers[api](work / api) as server:
                for count in counts:
                    tag = f"{api}{count}"
                    with server.target(tag) as target:
                        runs[count] = real_pods(
                            target,
                            work,
                            count,
                            args.rounds,
                            args.warmup,
                            tag,
                            mode=args.mode,
                            trace=args.trace,
                        )
                    print(
                        f"[{api}] {count} pods done, p50 {ms(runs[count].latency, 50):.1f} ms",
                        flush=True,
                    )
            print(f"[{api}] load average after: {load()}", flush=True)
            print_table(server.label, runs)
            print_targets(api, runs)
            for count, run in runs.items():
                if run.trace is not None:
                    rows = breakdown(read_trace(run.trace), run.starts)
                    print_breakdown(rows, title=f"[{api}] {count} pod(s): where the time goes")
        if args.fanout and "emulator" in apis:
            (work / "emuf").mkdir()
            with EmulatorProcess(workdir=work / "emuf") as emu:
                r = asyncio.run(fanout(emu, work, args.fanout, args.fanout_rounds))
                print(
                    f"\nfan-out {args.fanout} in-process sidecars (emulator): p50 "
                    f"{r['fanout_p50'] * 1e3:.0f} ms  max {r['fanout_max'] * 1e3:.0f} ms; "
                    f"operator RSS with {args.fanout} pods and 101 ConfigMaps indexed: "
                    f"{r['rss_mib']:.0f} MiB",
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
