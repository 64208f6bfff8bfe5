"""The operator's CPU per rollout on its push path, without kopf, the API or real sidecars.

    .venv/bin/python bench/operator_push.py [--pods 100] [--rounds 50] [--heap-pods 1000]

A child process serves ``--pods`` minimal sidecar endpoints (127.0.x.y, one asyncio protocol
each, answering every ``POST /v2/push`` with a fixed 200 "applied" answer without verifying
it, so that they cost next to nothing). This process runs the operator's own
:class:`RolloutManager` with the real ``Deliverer``, ``Pusher``, ``Signer`` and ``Metrics`` (no
status writes: no API) and rolls a new revision of a 1 KiB ConfigMap out to every endpoint,
``--rounds`` times. Printed: this process's CPU per rollout (``time.process_time``, so it holds
while other jobs load the machine), from the new revision seen to the last push written to its
socket ("to last push") and to the rollout's end; and wall time per rollout.

``--heap-pods`` keeps that many pod-like objects alive (each a JSON pod of ~2 KiB, as kopf's
index and caches hold them), so that full garbage collections cost what they cost in an operator
watching that many pods; ``--gc-policy off`` leaves the collector as Python sets it, to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import multiprocessing
import statistics
import time
from typing import Any

from hotconf_wire.envelope import DEFAULT_PORT, SIGNATURE_HEADER

ANSWER_BODY = b'{"status":"applied","revision":"r","sequence":1,"clients":[]}'
ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    b"Content-Length: " + str(len(ANSWER_BODY)).encode() + b"\r\n\r\n" + ANSWER_BODY
)


def host_of(i: int) -> str:
    return f"127.0.{1 + i // 250}.{1 + i % 250}"


class Endpoint(asyncio.Protocol):
    """Reads a request (head, then Content-Length bytes) and answers it; keeps the connection."""

    def __init__(self) -> None:
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            length = 0
            for line in self.buf[:end].split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if len(self.buf) < end + 4 + length:
                return
            self.buf = self.buf[end + 4 + length :]
            assert self.transport is not None
            self.transport.write(ANSWER)


def serve(count: int, ready: Any, stop: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        servers = []
        ports = []
        for i in range(count):
            server = await loop.create_server(Endpoint, host_of(i), 0)
            servers.append(server)
            ports.append(server.sockets[0].getsockname()[1])
        ready.send(ports)
        await loop.run_in_executor(None, stop.wait)
        for server in servers:
            server.close()

    asyncio.run(main())


def pod_body(i: int) -> dict[str, Any]:
    """A pod as the API returns it (what kopf keeps per pod), about 2 KiB of JSON."""
    body: dict[str, Any] = json.loads(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"app-{i}",
                    "namespace": "default",
                    "uid": f"uid-{i:08d}",
                    "labels": {
                        "app": "demo",
                        "pod-template-hash": "7c9d8f",
                        "hotconf.dev/inject": "true",
                    },
                    "annotations": {
                        "hotconf.dev/configmaps": "demo",
                        "hotconf.dev/port": str(DEFAULT_PORT),
                    },
                    "ownerReferences": [{"kind": "ReplicaSet", "name": "demo-7c9d8f"}],
                },
                "spec": {
                    "containers": [
                        {
                            "name": n,
                            "image": f"{n}:1",
                            "env": [{"name": f"V{k}", "value": str(k)} for k in range(8)],
                            "volumeMounts": [{"name": "v", "mountPath": "/v"}],
                        }
                        for n in ("app", "hotconf-sidecar")
                    ],
                    "volumes": [{"name": "v", "emptyDir": {}}],
                },
                "status": {
                    "phase": "Running",
                    "podIP": host_of(i),
                    "conditions": [{"type": t, "status": "True"} for t in ("Ready", "Scheduled")],
                },
            }
        )
    )
    return body


async def rollouts(ports: list[int], rounds: int, gc_policy: bool) -> dict[str, list[float]]:
    from hotconf_operator._delivery import Deliverer
    from hotconf_operator._index import PodTarget
    from hotconf_operator._metrics import Metrics
    from hotconf_operator._pusher import Pusher
    from hotconf_operator._reporter import StatusReporter
    from hotconf_operator._rollout import RolloutManager
    from hotconf_operator._settings import PushConfig
    from hotconf_operator._signing import Signer
    from hotconf_wire.protocol import ConfigMapRef

    ref = ConfigMapRef("default", "demo")
    targets = [
        PodTarget(namespace="default", name=f"app-{i}", uid=f"uid-{i:08d}", ip=host_of(i), port=p)
        for i, p in enumerate(ports)
    ]
    try:  # as __main__ builds it; code from before the own push client had no such limit
        from hotconf_operator._sidecar_http import idle_connections_allowed

        pusher = Pusher(PushConfig(concurrency=256), max_idle=idle_connections_allowed())
    except ImportError:
        pusher = Pusher(PushConfig(concurrency=256))
    metrics = Metrics()
    manager = RolloutManager(
        deliverer=Deliverer(pusher=pusher, signer=Signer.generate(), metrics=metrics),
        reporter=StatusReporter(None),
        metrics=metrics,
        targets=lambda r: list(targets) if r == ref else [],
    )
    last_write: list[float] = [0.0]

    # the CPU time when the last request of a round was written to its socket
    def body(value: int) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"namespace": "default", "name": "demo", "uid": "cm-uid"},
            "data": {"value": str(value), "app.yaml": "k: " + "x" * 1000},
        }

    keeper = None
    if gc_policy:
        from hotconf_operator._gc import HeapKeeper

        keeper = HeapKeeper(busy=lambda: False)
        keeper.apply_thresholds()
    result: dict[str, list[float]] = {"cpu_last": [], "cpu_round": [], "wall": []}
    try:
        for i in range(rounds + 2):
            sent = 0

            def count_sent() -> None:
                nonlocal sent
                sent += 1
                if sent == len(targets):
                    last_write[0] = time.process_time()

            Endpoint_hook[0] = count_sent
            cpu0 = time.process_time()
            t0 = time.perf_counter()
            await manager.configmap_seen(body(i))
            await manager.wait_idle()
            wall = time.perf_counter() - t0
            cpu = time.process_time() - cpu0
            if i >= 2:  # the first two connect to every endpoint
                result["cpu_round"].append(cpu)
                result["wall"].append(wall)
                result["cpu_last"].append(last_write[0] - cpu0)
            if i == 0 and keeper is not None:
                keeper.refreeze()
            await asyncio.sleep(0.05)
    finally:
        await manager.aclose()
        await pusher.aclose()
    return result


#: Called for every request a socket write sent (patched into the transport below).
Endpoint_hook: list[Any] = [lambda: None]


def patch_writes() -> None:
    """Count the push requests written: the push client writes each request's head (which has the
    signature header) with one ``transport.write``, the body with it or just after."""
    from asyncio import selector_events

    transport_cls: Any = getattr(selector_events, "_SelectorSocketTransport")  # noqa: B009
    original = transport_cls.write

    def write(self: Any, data: Any) -> None:
        original(self, data)
        if SIGNATURE_HEADER.encode() in bytes(data[:4096]):  # in the request's head
            Endpoint_hook[0]()

    transport_cls.write = write


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--heap-pods", type=int, default=1000)
    parser.add_argument("--gc-policy", choices=("on", "off"), default="on")
    parser.add_argument("--profile", metavar="PATH", help="write a cProfile of the rollouts")
    args = parser.parse_args()
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    stop = ctx.Event()
    proc = ctx.Process(target=serve, args=(args.pods, child, stop), daemon=True)
    proc.start()
    try:
        ports = parent.recv()
        heap = [pod_body(i) for i in range(args.heap_pods)]
        patch_writes()
        profiler = cProfile.Profile() if args.profile else None
        if profiler is not None:
            profiler.enable()
        r = asyncio.run(rollouts(ports, args.rounds, args.gc_policy == "on"))
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
        del heap
    finally:
        stop.set()
        proc.join(5)
        with contextlib.suppress(Exception):
            proc.kill()
    print(
        f"{args.pods} pods, {args.rounds} rollouts, {args.heap_pods} pods on the heap, "
        f"gc policy {args.gc_policy}: CPU per rollout to last push p50 "
        f"{statistics.median(r['cpu_last']) * 1e3:.1f} ms, whole p50 "
        f"{statistics.median(r['cpu_round']) * 1e3:.1f} ms / mean "
        f"{statistics.mean(r['cpu_round']) * 1e3:.1f} ms / max {max(r['cpu_round']) * 1e3:.1f} ms;"
        f" wall p50 {statistics.median(r['wall']) * 1e3:.1f} ms",
        flush=True,
    )


if __name__ == "__main__":
    main()
