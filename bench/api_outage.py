"""After an API outage: how soon a change made right after the API is back reaches the pod.

    .venv/bin/python bench/api_outage.py [--rounds 10] [--outage 5] [--mode thread|process]

A real kube-apiserver and etcd (``bench/kube_apis.py``'s ``RealApi``: HTTPS, RBAC, the chart
installed with helm, webhook off), the operator as the chart's ServiceAccount but through
``hotconf_e2e.outage.ApiProxy`` (a TCP proxy its kubeconfig points at), one real pod (sidecar
and worker). Each round cuts the proxy (the operator's watch streams end mid-flight and new
connections are refused, as when the API server restarts), waits ``--outage`` seconds, restores
it, PATCHes the ConfigMap at once as the admin (straight to the API server, on a kept-alive
connection) and times from just before the PATCH to the worker's report of the new value
(``time.time()`` in the worker when its task starts on it: one machine, one clock). Then 2 s of
quiet before the next round. What this measures is mostly how long the operator waits before its
next attempt to reach the API: kopf's retry delays, or hotconf's (``--api-retry-max``).

Run the operator of another tree by putting its ``operator`` folder first on ``PYTHONPATH``.
Results go to ``docs/performance.md`` by hand; nothing here is asserted by a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for bench.kube_apis

from hotconf_e2e import OperatorProcess, make_key, pods, wait_for
from hotconf_e2e.outage import ApiProxy

from bench.kube_apis import RealApi, Writer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="outages (default 10)")
    parser.add_argument("--outage", type=float, default=5.0, help="seconds each (default 5)")
    parser.add_argument("--mode", choices=("thread", "process"), default="thread")
    args = parser.parse_args()
    times: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with RealApi(work / "real") as server, server.target("outage") as target:
            api = target.api
            api.request(
                "POST",
                f"/api/v1/namespaces/{api.namespace}/configmaps",
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "outage", "labels": {"hotconf.dev/enabled": "true"}},
                    "data": {"value": "0"},
                },
            )
            key = work / "key.pem"
            pub = make_key(key)
            proxy = ApiProxy(server.cp.port).start()
            kubeconfig = work / "operator-proxy.kubeconfig"
            kubeconfig.write_text(
                target.operator_kubeconfig.read_text().replace(
                    server.cp.url, f"https://127.0.0.1:{proxy.port}"
                )
            )
            op = OperatorProcess(
                kubeconfig=kubeconfig, key_file=key, workdir=work,
                extra=("--reconcile-interval", "3600"),
            ).start()  # fmt: skip
            writer = Writer(target.connect)
            try:
                with pods(
                    api, work / "pods", 1, configmap="outage", public_key_pem=pub,
                    worker_mode=args.mode,
                ) as [pod]:  # fmt: skip
                    wait_for("first config", lambda: pod.current().get("value") == "0", 120)
                    time.sleep(1.0)
                    for i in range(1, args.rounds + 1):
                        proxy.cut()
                        time.sleep(args.outage)
                        proxy.restore()
                        t0 = time.time()
                        writer.patch_cm(api.namespace, "outage", {"data": {"value": str(i)}})

                        def arrived(value: str = str(i)) -> dict[str, object] | None:
                            report = pod.current()
                            return report if report.get("value") == value else None

                        report = wait_for(f"value {i}", arrived, timeout=120, every=0.002)
                        times.append(float(report["t"]) - t0)
                        print(f"round {i}: {times[-1] * 1e3:.0f} ms", flush=True)
                        time.sleep(2.0)
            finally:
                writer.close()
                op.stop()
                proxy.stop()
    ordered = sorted(times)
    print(
        f"\nafter a {args.outage:g} s API outage, PATCH -> worker running it, {len(times)} rounds "
        f"({args.mode} mode): p50 {statistics.median(times) * 1e3:.0f} ms, "
        f"min {ordered[0] * 1e3:.0f} ms, max {ordered[-1] * 1e3:.0f} ms; "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        flush=True,
    )


if __name__ == "__main__":
    main()
