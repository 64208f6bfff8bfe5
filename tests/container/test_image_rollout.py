"""The image on the real control plane: the operator container (the chart's security context,
the chart's ServiceAccount) serves health and metrics and rolls ConfigMap changes out to
sidecar containers (the injected spec: user 65532, read-only root, no capabilities), each next
to an application sharing its socket directory; SIGKILL of a sidecar container or of the
operator container loses nothing: the application keeps running its config, unrestarted, and a
change made while the container was dead arrives once it is started again."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hotconf_e2e import sample, wait_for
from hotconf_e2e.container import ContainerPod, OperatorContainer

# The first test to run pays the image build: about 2 minutes on a fresh machine (debootstrap
# included), seconds once cached.
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(420)]


@pytest.fixture
def operator(cluster: Any, image: str) -> Iterator[OperatorContainer]:
    op = OperatorContainer(
        image=image,
        kubeconfig=cluster.operator_kubeconfig,
        key_file=cluster.key_file,
        workdir=cluster.workdir,
    ).start()
    try:
        op.wait_healthy()
        yield op
    finally:
        code = op.stop()
        assert code == 0, f"operator container exited {code}:\n{op.logs()[-4000:]}"


@pytest.fixture
def pods(cluster: Any, image: str) -> Iterator[list[ContainerPod]]:
    started: list[ContainerPod] = []
    try:
        for i in range(2):
            pod = ContainerPod(image=image, api=cluster.api, workdir=cluster.workdir,
                               name=f"web-{i}", ip=f"127.0.0.{60 + i}", configmap="app",
                               public_key_pem=cluster.public_key_pem)  # fmt: skip
            started.append(pod)
            pod.start()
        yield started
    finally:
        for pod in started:
            pod.stop()


def create_configmap(cluster: Any, value: str) -> None:
    cluster.api.request(
        "POST",
        f"/api/v1/namespaces/{cluster.namespace}/configmaps",
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "app", "labels": {"hotconf.dev/enabled": "true"}},
         "data": {"value": value}},
    )  # fmt: skip


def values(pods: list[ContainerPod]) -> list[Any]:
    return [pod.current().get("value") for pod in pods]


def wait_everywhere(pods: list[ContainerPod], value: str) -> None:
    wait_for(f"{value!r} in every application", lambda: values(pods) == [value] * len(pods),
             timeout=60)  # fmt: skip


def test_operator_container_serves_health_and_metrics_and_rolls_out(
    cluster: Any, operator: OperatorContainer, pods: list[ContainerPod]
) -> None:
    assert operator.healthz() == 200
    create_configmap(cluster, "one")
    wait_everywhere(pods, "one")
    wait_for("the rollout complete", lambda: (s := cluster.api.status_of("app"))
             and (s["phase"], s["applied"], s["total"]) == ("complete", 2, 2))  # fmt: skip
    text = operator.metrics()
    # Each pod got one push: applied, or held when its application was not connected yet (the
    # sweep then finds it applied, as the status says).
    pushes = sum(
        sample(text, "hotconf_operator_pushes_total", outcome=outcome) or 0
        for outcome in ("applied", "held")
    )
    assert pushes == 2, text
    cluster.api.patch_cm("app", {"data": {"value": "two"}})
    wait_everywhere(pods, "two")
    # Every pod's sidecar took each revision in a container of its own.
    for pod in pods:
        assert pod.container is not None and pod.container.running()
        assert pod.state()["configmaps"], pod.state()


def test_killed_sidecar_container_loses_nothing(
    cluster: Any, operator: OperatorContainer, pods: list[ContainerPod]
) -> None:
    create_configmap(cluster, "one")
    wait_everywhere(pods, "one")
    victim = pods[0]
    assert victim.container is not None and victim.worker is not None
    before = victim.current()

    victim.container.kill()
    # The application keeps running its config while its sidecar is dead.
    cluster.api.patch_cm("app", {"data": {"value": "two"}})
    wait_for("two in the other pod", lambda: pods[1].current().get("value") == "two", timeout=60)
    assert victim.current() == before
    assert victim.worker.poll() is None

    victim.container.start()
    victim.wait_sidecar()
    # The sidecar comes back with its state volume, and the operator's next push (or sweep)
    # brings the change it missed; the application restarts once, onto that revision.
    wait_everywhere(pods, "two")
    assert victim.worker.poll() is None and victim.worker.pid == before["pid"]
    assert victim.current()["generation"] == before["generation"] + 1
    cluster.api.patch_cm("app", {"data": {"value": "three"}})
    wait_everywhere(pods, "three")


def test_killed_operator_container_loses_nothing(
    cluster: Any, operator: OperatorContainer, pods: list[ContainerPod]
) -> None:
    create_configmap(cluster, "one")
    wait_everywhere(pods, "one")
    before = [pod.current() for pod in pods]

    operator.kill()
    assert operator.healthz() is None
    cluster.api.patch_cm("app", {"data": {"value": "two"}})
    # Nobody pushes while the operator is dead: every application keeps running "one".
    for pod in pods:
        assert pod.container is not None and pod.container.running()
    assert [pod.current() for pod in pods] == before

    operator.start()
    operator.wait_healthy()
    wait_everywhere(pods, "two")
    for pod, old in zip(pods, before, strict=True):
        assert pod.current()["generation"] == old["generation"] + 1
        assert pod.current()["pid"] == old["pid"]
    cluster.api.patch_cm("app", {"data": {"value": "three"}})
    wait_everywhere(pods, "three")
