"""A real kopf operator runs against the emulator process, cluster-wide and namespaced.

Proves: kopf logs in with the emulator's kubeconfig, lists and watches ConfigMaps with a
labelSelector (only labelled ones reach the handler), sees creations and later changes, and
patches the object back; in ``--namespace`` mode it ignores other namespaces. The official
``kubernetes`` client reads and watches (``watch=True``) through the same kubeconfig.
"""

from __future__ import annotations

import pathlib
import textwrap
import time
from collections.abc import Callable, Iterator
from typing import Any

import kopf.testing
import kubernetes
import pytest
from kube_emulator import EmulatorProcess

CoreV1 = Any  # kubernetes.client.CoreV1Api; its stubs want model objects, tests pass dicts

OPERATOR = textwrap.dedent("""\
    import kopf

    @kopf.on.startup()
    def configure(settings: kopf.OperatorSettings, **_):
        settings.watching.server_timeout = 10
        settings.posting.enabled = False

    @kopf.on.cleanup()
    async def release_the_executor(settings: kopf.OperatorSettings, **_):
        # kopf never shuts down the thread pool of its sync handlers; run in the test's process
        # (kopf.testing.KopfRunner), its threads would outlive the test.
        settings.execution.executor.shutdown(wait=False)

    @kopf.on.login()
    def login(**kwargs):
        return kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.event("configmaps", labels={"hotconf.dev/enabled": "true"})
    def seen(body, patch, **_):
        if body["metadata"].get("annotations", {}).get("seen") != body["data"]["value"]:
            patch.metadata.annotations["seen"] = body["data"]["value"]
""")


@pytest.fixture
def operator_file(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "operator.py"
    path.write_text(OPERATOR)
    return path


@pytest.fixture
def core_v1(kube_emulator_process: EmulatorProcess) -> Iterator[CoreV1]:
    api_client = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(kube_emulator_process.kubeconfig)
    )
    api = kubernetes.client.CoreV1Api(api_client)
    yield api
    api_client.close()


def make_cm(api: CoreV1, namespace: str, name: str, *, labelled: bool) -> None:
    labels = {"hotconf.dev/enabled": "true" if labelled else "false"}
    body = {"metadata": {"name": name, "labels": labels}, "data": {"value": "v1"}}
    api.create_namespaced_config_map(namespace, body)


def wait_for(check: Callable[[], bool], *, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("the operator did not react in time")
        time.sleep(0.05)


def seen(api: CoreV1, namespace: str, name: str) -> str | None:
    annotations = api.read_namespaced_config_map(name, namespace).metadata.annotations or {}
    value: str | None = annotations.get("seen")
    return value


@pytest.mark.e2e
@pytest.mark.parametrize("scope", [["--all-namespaces"], ["--namespace", "team"]])
def test_kopf_sees_labelled_configmaps(
    kube_env: dict[str, str],
    core_v1: CoreV1,
    operator_file: pathlib.Path,
    scope: list[str],
) -> None:
    for namespace in ("team", "elsewhere"):
        core_v1.create_namespace({"metadata": {"name": namespace}})
    make_cm(core_v1, "team", "before", labelled=True)
    args = ["run", "--standalone", *scope, str(operator_file)]
    with kopf.testing.KopfRunner(args, timeout=30) as runner:
        make_cm(core_v1, "team", "after", labelled=True)
        make_cm(core_v1, "team", "plain", labelled=False)
        make_cm(core_v1, "elsewhere", "remote", labelled=True)
        wait_for(lambda: seen(core_v1, "team", "before") == "v1")
        wait_for(lambda: seen(core_v1, "team", "after") == "v1")
        core_v1.patch_namespaced_config_map("after", "team", {"data": {"value": "v2"}})
        wait_for(lambda: seen(core_v1, "team", "after") == "v2")
        if scope == ["--all-namespaces"]:
            wait_for(lambda: seen(core_v1, "elsewhere", "remote") == "v1")
        assert seen(core_v1, "team", "plain") is None
    assert runner.exit_code == 0, runner.output
    assert runner.exception is None
    if scope != ["--all-namespaces"]:
        assert seen(core_v1, "elsewhere", "remote") is None


def test_kubernetes_client_watch(core_v1: CoreV1) -> None:
    make_cm(core_v1, "default", "a", labelled=True)
    version = core_v1.list_namespaced_config_map("default").metadata.resource_version
    make_cm(core_v1, "default", "b", labelled=True)
    watch: Any = kubernetes.watch.Watch()  # type: ignore[no-untyped-call]
    events = [
        (event["type"], event["object"].metadata.name)
        for event in watch.stream(
            core_v1.list_namespaced_config_map,
            "default",
            resource_version=version,
            timeout_seconds=1,
        )
    ]
    assert events == [("ADDED", "b")]
