"""Adapter annotations, as the injection turns them into a pod: ``hotconf.dev/files`` mounts an
emptyDir read-write in the sidecar and read-only at the given path in every application
container; ``hotconf.dev/notify-url`` sets the sidecar's notify URL; ``hotconf.dev/signal`` with
``hotconf.dev/signal-process`` shares the process namespace and runs the sidecar as the
application's user; each malformed or contradicted annotation leaves its adapter off with a
warning naming it, and the pod is injected all the same; injecting twice changes nothing; the
result is a valid Pod for the Kubernetes versions hotconf supports."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from hotconf_operator._injection import SIDECAR_NAME, InjectionSettings, inject

SETTINGS = InjectionSettings(image="registry.example/hotconf:1.0", public_key_pem="PEM")
FILES = {"hotconf.dev/files": "/etc/hotconf"}
SIGNAL = {"hotconf.dev/signal": "SIGHUP", "hotconf.dev/signal-process": "nginx"}
URL = {"hotconf.dev/notify-url": "http://localhost:8080/-/reload"}


def pod(annotations: dict[str, str], **spec: Any) -> dict[str, Any]:
    containers = spec.pop("containers", [{"name": "app", "image": "app:1"}])
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"hotconf.dev/inject": "true"},
                     "annotations": {"hotconf.dev/configmaps": "web", **annotations}},
        "spec": {"containers": containers, **spec},
    }  # fmt: skip


def injected(body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    warnings: list[str] = []
    assert inject(body, SETTINGS, warnings=warnings) is True
    return body, warnings


def sidecar_of(body: dict[str, Any]) -> dict[str, Any]:
    [sidecar] = [c for c in body["spec"]["initContainers"] if c["name"] == SIDECAR_NAME]
    return dict(sidecar)


def env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env") or []}


def test_files_are_an_empty_dir_written_by_the_sidecar_and_read_only_for_the_app() -> None:
    two = [{"name": "app", "image": "app:1"}, {"name": "worker", "image": "worker:1"}]
    body, warnings = injected(pod(FILES, containers=two))
    assert warnings == []
    volumes = {v["name"]: v for v in body["spec"]["volumes"]}
    assert volumes["hotconf-files"] == {"name": "hotconf-files", "emptyDir": {"sizeLimit": "16Mi"}}
    sidecar = sidecar_of(body)
    [side_mount] = [m for m in sidecar["volumeMounts"] if m["name"] == "hotconf-files"]
    assert not side_mount.get("readOnly")
    assert env(sidecar)["HOTCONF_FILES_DIR"] == side_mount["mountPath"]
    for container in body["spec"]["containers"]:
        [mount] = [m for m in container["volumeMounts"] if m["name"] == "hotconf-files"]
        assert mount == {"name": "hotconf-files", "mountPath": "/etc/hotconf", "readOnly": True}
        assert env(container)["HOTCONF_FILES_DIR"] == "/etc/hotconf"


def test_notify_url_goes_to_the_sidecar_only() -> None:
    body, warnings = injected(pod(URL))
    assert warnings == []
    assert env(sidecar_of(body))["HOTCONF_NOTIFY_URL"] == "http://localhost:8080/-/reload"
    assert "HOTCONF_NOTIFY_URL" not in env(body["spec"]["containers"][0])
    assert "shareProcessNamespace" not in body["spec"]


@pytest.mark.parametrize(
    ("spec", "user"),
    [
        ({"securityContext": {"runAsUser": 1000}}, 1000),
        ({"securityContext": {"runAsUser": 1000},
          "containers": [{"name": "app", "securityContext": {"runAsUser": 2000}}]}, 2000),
    ],
)  # fmt: skip
def test_signal_shares_the_process_namespace_and_runs_the_sidecar_as_the_app(
    spec: dict[str, Any], user: int
) -> None:
    body, warnings = injected(pod({**SIGNAL, "hotconf.dev/signal": "hup"}, **spec))
    assert warnings == []
    assert body["spec"]["shareProcessNamespace"] is True
    sidecar = sidecar_of(body)
    assert env(sidecar)["HOTCONF_NOTIFY_SIGNAL"] == "SIGHUP"
    assert env(sidecar)["HOTCONF_NOTIFY_PROCESS"] == "nginx"
    assert sidecar["securityContext"]["runAsUser"] == user
    assert sidecar["securityContext"]["capabilities"] == {"drop": ["ALL"]}  # still restricted
    assert sidecar["securityContext"]["runAsNonRoot"] is True


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ({}, "does not say which user"),
        ({"securityContext": {"runAsUser": 0}}, "runs as root"),
        ({"containers": [{"name": "a", "securityContext": {"runAsUser": 1}},
                         {"name": "b", "securityContext": {"runAsUser": 2}}]},
         "different users (a: 1, b: 2)"),
    ],
)  # fmt: skip
def test_signal_warns_when_the_sidecar_cannot_run_as_the_app(
    spec: dict[str, Any], says: str
) -> None:
    body, warnings = injected(pod(SIGNAL, **spec))
    [warning] = warnings
    assert "hotconf.dev/signal" in warning and says in warning
    assert body["spec"]["shareProcessNamespace"] is True  # on all the same: it may still work
    assert sidecar_of(body)["securityContext"]["runAsUser"] == SETTINGS.run_as_user


@pytest.mark.parametrize(
    ("annotations", "names", "off"),
    [
        ({"hotconf.dev/files": "etc/hotconf"}, "hotconf.dev/files='etc/hotconf'", "files"),
        ({"hotconf.dev/files": "/etc/../hotconf"}, "hotconf.dev/files", "files"),
        ({"hotconf.dev/files": "/run/hotconf"}, "overlaps hotconf's own", "files"),
        ({"hotconf.dev/files": "/run"}, "overlaps hotconf's own", "files"),
        ({"hotconf.dev/notify-url": "localhost:8080"}, "hotconf.dev/notify-url", "url"),
        ({"hotconf.dev/notify-url": "http://h:99999/"}, "hotconf.dev/notify-url", "url"),
        ({"hotconf.dev/signal": "SIGKILL", "hotconf.dev/signal-process": "x"},
         "hotconf.dev/signal='SIGKILL'", "signal"),
        ({"hotconf.dev/signal": "reload", "hotconf.dev/signal-process": "x"},
         "hotconf.dev/signal='reload'", "signal"),
        ({"hotconf.dev/signal": "HUP"}, "needs hotconf.dev/signal-process", "signal"),
        ({"hotconf.dev/signal": "HUP", "hotconf.dev/signal-process": "/usr/bin/x"},
         "hotconf.dev/signal-process='/usr/bin/x'", "signal"),
        ({"hotconf.dev/signal-process": "x"}, "does nothing without hotconf.dev/signal", "signal"),
    ],
)  # fmt: skip
def test_a_malformed_annotation_leaves_its_adapter_off_with_a_warning(
    annotations: dict[str, str], names: str, off: str
) -> None:
    body, warnings = injected(pod(annotations, securityContext={"runAsUser": 7}))
    assert len(warnings) == 1 and names in warnings[0], warnings
    assert warnings[0].startswith("hotconf: ")
    side = env(sidecar_of(body))
    variables = {"files": "HOTCONF_FILES_DIR", "url": "HOTCONF_NOTIFY_URL",
                 "signal": "HOTCONF_NOTIFY_SIGNAL"}  # fmt: skip
    assert variables[off] not in side
    assert "hotconf-files" not in {v["name"] for v in body["spec"]["volumes"]}
    assert "shareProcessNamespace" not in body["spec"]


def test_a_pod_that_refuses_to_share_its_processes_gets_no_signal_adapter() -> None:
    body, warnings = injected(pod(SIGNAL, shareProcessNamespace=False))
    [warning] = warnings
    assert "shareProcessNamespace: true" in warning and "sets it to false" in warning
    assert body["spec"]["shareProcessNamespace"] is False
    assert "HOTCONF_NOTIFY_SIGNAL" not in env(sidecar_of(body))


def test_a_container_with_its_own_volume_at_the_files_path_keeps_it() -> None:
    own = {"name": "app", "volumeMounts": [{"name": "cfg", "mountPath": "/etc/hotconf"}]}
    other = {"name": "worker"}
    body, warnings = injected(pod(FILES, containers=[own, other], volumes=[{"name": "cfg"}]))
    [warning] = warnings
    assert "container 'app' already mounts volume 'cfg'" in warning
    app, worker = body["spec"]["containers"]
    assert [m for m in app["volumeMounts"] if m["mountPath"] == "/etc/hotconf"] == [
        {"name": "cfg", "mountPath": "/etc/hotconf"}
    ]
    assert "HOTCONF_FILES_DIR" not in env(app)
    assert any(m["name"] == "hotconf-files" for m in worker["volumeMounts"])


def test_injecting_twice_changes_nothing() -> None:
    once, _ = injected(pod({**FILES, **URL, **SIGNAL}, securityContext={"runAsUser": 1000}))
    twice = copy.deepcopy(once)
    assert inject(twice, SETTINGS, warnings=[]) is False
    assert twice == once


@pytest.mark.parametrize("version", ["1.29.0", kubernetes_validate.latest_version()])
def test_a_pod_with_every_adapter_is_a_valid_pod(version: str) -> None:
    body, _ = injected(pod({**FILES, **URL, **SIGNAL}, securityContext={"runAsUser": 1000}))
    kubernetes_validate.validate(body, version, strict=True)
