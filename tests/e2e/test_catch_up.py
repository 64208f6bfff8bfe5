"""End to end: a pod that missed a push catches up as soon as it is reachable again.

Proves, with the reconcile sweep set to an hour so that only the operator's follow-up of pods
that did not answer (``_reconcile``: a short state read at most every second) can explain it:
a sidecar killed when a change is pushed, a pod restarted meanwhile (not Ready, then Ready
again), and a pod cut off the network for a moment each hold the new revision within a few
seconds of answering again (the design bound is about 1 s; the timeout here is generous for a
loaded machine and still hundreds of times shorter than the sweep), its application runs it,
and the status ends complete; while it is stale, the status names it, the revision it runs and
why. The catch-up time is printed (``-s``) for docs/operator.md.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hotconf_e2e import Pod, configmap_manifest, kubectl, running_status, wait_for
from hotconf_e2e.outage import ApiProxy

pytestmark = pytest.mark.e2e

#: The sweep never runs during a test.
NO_SWEEP = ("--reconcile-interval", "3600")
#: Well above the design's bound (one probe interval, 1 s, plus a push), far below the sweep.
CATCH_UP_BOUND = 10.0


def sidecar_revision(pod: Pod) -> str | None:
    try:
        state = pod.state()
    except OSError:
        return None
    return next((c["revision"] for c in state.get("configmaps", []) if c["name"] == "app"), None)


def change(cluster: Any, value: str) -> str:
    kubectl(cluster.kubeconfig, "patch", "configmap", "app", "--type=merge",
            "-p", json.dumps({"data": {"value": value}}))  # fmt: skip
    return str(wait_for("the new revision in the status",
                        lambda: (s := cluster.api.status_of("app")) and s["revision"] != "" and
                        s["phase"] == "incomplete" and s["revision"]))  # fmt: skip


def caught_up(cluster: Any, pod: Pod, revision: str, back: float, what: str) -> None:
    wait_for(f"{what}: the sidecar holds the missed revision",
             lambda: sidecar_revision(pod) == revision, timeout=CATCH_UP_BOUND)  # fmt: skip
    took = time.monotonic() - back
    print(f"\n{what}: caught up {took * 1e3:.0f} ms after it was reachable again")
    wait_for(f"{what}: the application runs it", lambda: pod.current().get("revision") == revision)
    wait_for(
        f"{what}: complete status",
        lambda: (s := cluster.api.status_of("app")) and s["revision"] == revision
        and s["phase"] == "complete",
    )  # fmt: skip


def one_pod(cluster: Any, **options: Any) -> Pod:
    return Pod(api=cluster.api, workdir=cluster.workdir, name="web-0", ip="127.0.0.10",
               configmap="app", public_key_pem=cluster.public_key_pem, **options)  # fmt: skip


def test_a_killed_sidecar_catches_up_once_it_is_back(cluster: Any) -> None:
    kubectl(cluster.kubeconfig, "apply", "-f", "-",
            stdin=configmap_manifest("app", {"value": "one"}))  # fmt: skip
    operator = cluster.operator(*NO_SWEEP)
    pod = one_pod(cluster)
    try:
        pod.start()
        wait_for("first config", lambda: pod.current().get("value") == "one")
        # The operator knows what web-0 runs once it saw it applied (not only held).
        wait_for(
            "web-0 counted applied",
            lambda: (s := cluster.api.status_of("app")) and (s["applied"], s["held"]) == (1, 0),
        )
        assert pod.sidecar is not None
        old = pod.current()["revision"]
        pod.sidecar.kill()
        pod.sidecar.wait()
        revision = change(cluster, "two")
        # The status names the stale pod, what it runs and why.
        status = cluster.api.status_of("app")
        assert (status["pending"], status["pod"]) == (1, "web-0")
        [line] = status["pods"]
        assert (line["pod"], line["state"], line["runs"]) == ("web-0", "pending", old)
        assert "failed" in line["message"] and status["message"].startswith(line["message"])
        time.sleep(2)  # several probes fail meanwhile
        pod.start_sidecar()
        pod.wait_sidecar()
        caught_up(cluster, pod, revision, time.monotonic(), "killed sidecar")
        assert (operator.metric("hotconf_operator_caught_up_pods_total") or 0) >= 1
    finally:
        pod.stop()
        assert operator.stop() == 0, operator.logs()[-4000:]


def test_a_restarted_pod_catches_up_once_it_is_ready(cluster: Any) -> None:
    kubectl(cluster.kubeconfig, "apply", "-f", "-",
            stdin=configmap_manifest("app", {"value": "one"}))  # fmt: skip
    operator = cluster.operator(*NO_SWEEP)
    pod = one_pod(cluster)
    try:
        pod.start()
        wait_for("first config", lambda: pod.current().get("value") == "one")
        # Its containers restart: the kubelet marks it not Ready, the processes go.
        not_ready = running_status(pod.ip)
        for condition in not_ready["conditions"]:
            if condition["type"] in ("Ready", "ContainersReady"):
                condition["status"] = "False"
        cluster.api.set_pod_status(pod.name, not_ready)
        pod.stop()
        revision = change(cluster, "two")
        time.sleep(2)
        pod.start_sidecar()
        pod.wait_sidecar()
        pod.start_worker()
        pod.wait_worker()  # then Ready, as a kubelet marks it once its containers are
        back = time.monotonic()
        cluster.api.set_pod_status(pod.name, running_status(pod.ip))
        caught_up(cluster, pod, revision, back, "restarted pod")
    finally:
        pod.stop()
        assert operator.stop() == 0, operator.logs()[-4000:]


def test_a_pod_cut_off_the_network_catches_up_once_it_is_reachable(cluster: Any) -> None:
    kubectl(cluster.kubeconfig, "apply", "-f", "-",
            stdin=configmap_manifest("app", {"value": "one"}))  # fmt: skip
    pod = one_pod(cluster)
    # The operator reaches the sidecar only through this proxy on the pod's address.
    network = ApiProxy(pod.port, host=pod.ip).start()
    pod.advertised_port = network.port
    operator = cluster.operator(*NO_SWEEP)
    try:
        pod.start()
        wait_for("first config", lambda: pod.current().get("value") == "one")
        network.cut()
        revision = change(cluster, "two")
        time.sleep(2)
        assert sidecar_revision(pod) != revision  # the sidecar itself is up, just unreachable
        network.restore()
        caught_up(cluster, pod, revision, time.monotonic(), "network cut")
    finally:
        pod.stop()
        network.stop()
        assert operator.stop() == 0, operator.logs()[-4000:]
