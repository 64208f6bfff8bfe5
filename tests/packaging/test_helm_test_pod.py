"""The chart's `helm test` pod checks endpoints that the operator really serves: its script, as
rendered, run against a real ``hotconf-operator`` (emulated API, health and metrics ports, webhook
with a certificate) with the pod's environment pointed at it, passes all three checks (kopf's
``/healthz``, Prometheus ``/metrics``, the webhook's TLS); and it fails when an endpoint is not
there."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hotconf_e2e import free_port
from hotconf_e2e.webhook import Operator, running_operator


@pytest.fixture
def ports() -> dict[str, int]:
    return {"health": free_port(), "metrics": free_port()}


@pytest.fixture
def operator(
    tmp_path: Path, ports: dict[str, int], control_plane: Any, chart_release: Any
) -> Iterator[Operator]:
    with running_operator(
        tmp_path,
        "--health-port", str(ports["health"]),
        "--metrics-port", str(ports["metrics"]),
        control_plane=control_plane,
        release=chart_release,
    ) as running:  # fmt: skip
        yield running


def helm_test_pod(chart) -> dict[str, Any]:
    pods = [
        p for p in chart.render().of_kind("Pod") if "helm.sh/hook" in p["metadata"]["annotations"]
    ]
    assert len(pods) == 1
    pod: dict[str, Any] = pods[0]
    return pod


def run_check(chart, tmp_path: Path, operator: Operator, ports: dict[str, int], **override: str):
    container = helm_test_pod(chart)["spec"]["containers"][0]
    command = container["command"]
    assert command[:2] == ["python", "-c"]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert set(env) == {
        "HOTCONF_TEST_HOST",
        "HOTCONF_TEST_HEALTH_PORT",
        "HOTCONF_TEST_METRICS_PORT",
        "HOTCONF_TEST_WEBHOOK_PORT",
        "HOTCONF_TEST_CA_FILE",
    }
    # Inside the cluster: the Service name and its ports; here: the operator on 127.0.0.1.
    webhook_port = operator.hook.url.rsplit(":", 1)[1].split("/", 1)[0]
    env.update(
        HOTCONF_TEST_HOST="127.0.0.1",
        HOTCONF_TEST_HEALTH_PORT=str(ports["health"]),
        HOTCONF_TEST_METRICS_PORT=str(ports["metrics"]),
        HOTCONF_TEST_WEBHOOK_PORT=webhook_port,
        HOTCONF_TEST_CA_FILE=str(tmp_path / "tls" / "tls.crt"),
    )
    env.update(override)
    return subprocess.run(
        [sys.executable, "-c", command[2]],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def test_helm_test_script_passes_against_the_operator(
    chart, tmp_path: Path, operator: Operator, ports: dict[str, int]
) -> None:
    done = run_check(chart, tmp_path, operator, ports)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("ok: ") == 3, done.stdout


def test_helm_test_script_fails_without_a_metrics_endpoint(
    chart, tmp_path: Path, operator: Operator, ports: dict[str, int]
) -> None:
    done = run_check(chart, tmp_path, operator, ports, HOTCONF_TEST_METRICS_PORT=str(free_port()))
    assert done.returncode != 0
    assert "ok: http://127.0.0.1/healthz" in done.stdout
