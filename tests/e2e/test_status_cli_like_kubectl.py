"""``kubectl hotconf status`` behaves like kubectl, on the real API server.

Proves: without ``-n`` the namespace is the current context's, ``-A`` lists every namespace and
wins over ``-n`` (as ``kubectl get -A -n X`` does); ``-o table|wide|json|yaml|name`` print what
kubectl users expect (wide adds POD and UPDATED, name prints ``configmap/NAME``), and ``--no-
headers`` drops the header line; ``--version`` prints the hotconf version; ``--wait`` exits 0
once the current revision is complete (progress on stderr, kubectl rollout status style), 4
naming the ConfigMap and pod when it halted or was rejected, 3 at the timeout, and keeps waiting
while the status is of an older revision than the content; the plugin runs with kopf, aiohttp,
cryptography and prometheus_client made unimportable (the ``kubectl`` extra alone, which has
jsonschema for ``rollback``'s validation). The statuses are written by the test as the operator
writes them, except in the last test: a real operator and pods, ``kubectl hotconf status
--wait`` through kubectl's plugin lookup: an edit made while the operator is down leaves the old
revision's ``complete`` on the ConfigMap, and the wait holds until the restarted operator has
applied the new one on both pods (0); a rejection exits 4 naming the pod.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest
import yaml
from hotconf_e2e import BIN, KUBECTL, configmap_manifest, kubectl, pods
from packaging.requirements import Requirement

from hotconf_wire.protocol import compute_revision

pytestmark = pytest.mark.e2e

DATA = {"app.yaml": "port: 8080\n"}
REVISION = compute_revision(DATA)


def annotation(phase: str, *, revision: str = REVISION, **fields: Any) -> str:
    status = {"revision": revision, "phase": phase, "applied": 2, "rejected": 0, "pending": 0,
              "total": 2, "pod": "", "message": "", "time": "2026-01-01T00:00:00Z"}  # fmt: skip
    status.update(fields)
    return json.dumps(status)


def put(cluster: Any, name: str, status: str | None, *, namespace: str | None = None) -> None:
    ns = namespace or cluster.namespace
    meta: dict[str, Any] = {"name": name, "labels": {"hotconf.dev/enabled": "true"}}
    if status is not None:
        meta["annotations"] = {"hotconf.dev/status": status}
    cluster.api.request(
        "POST", f"/api/v1/namespaces/{ns}/configmaps", {"metadata": meta, "data": DATA}
    )


def set_status(cluster: Any, name: str, status: str) -> None:
    cluster.api.patch_cm(name, {"metadata": {"annotations": {"hotconf.dev/status": status}}})


def status(cluster: Any, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "kubectl-hotconf"), "status", *args], capture_output=True, text=True,
        env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}, timeout=timeout, check=False,
    )  # fmt: skip


def ok(run: subprocess.CompletedProcess[str]) -> str:
    assert run.returncode == 0, (run.stdout, run.stderr)
    return run.stdout


@pytest.fixture
def other(cluster: Any) -> Any:
    namespace = cluster.control_plane.create_namespace(prefix="status-kubectl")
    yield namespace
    cluster.control_plane.delete_namespace(namespace)


def test_namespace_defaults_to_the_contexts_and_all_namespaces_wins(
    cluster: Any, other: str
) -> None:
    put(cluster, "mine", annotation("complete"))
    put(cluster, "theirs", annotation("complete"), namespace=other)
    assert ok(status(cluster, "-o", "name")) == "configmap/mine\n"
    assert ok(status(cluster, "-n", other, "-o", "name")) == "configmap/theirs\n"
    listed = {
        (r["namespace"], r["name"]) for r in json.loads(ok(status(cluster, "-A", "-o", "json")))
    }
    assert {(cluster.namespace, "mine"), (other, "theirs")} <= listed
    both = json.loads(ok(status(cluster, "-A", "-n", other, "-o", "json")))  # as kubectl: -A wins
    assert {(r["namespace"], r["name"]) for r in both} == listed


def test_output_formats_and_no_headers(cluster: Any) -> None:
    put(cluster, "web", annotation("halted", applied=1, rejected=1, pod="web-2",
                                   message="port must be an integer"))  # fmt: skip
    [header, row] = ok(status(cluster)).splitlines()
    assert header.split() == ["NAMESPACE", "NAME", "REVISION", "PHASE", "APPLIED", "HELD",
                              "REJECTED", "PENDING", "TOTAL", "AGE", "MESSAGE"]  # fmt: skip
    assert row.split()[:4] == [cluster.namespace, "web", REVISION[7:19], "halted"]
    [no_header] = ok(status(cluster, "--no-headers")).splitlines()
    assert no_header.split() == row.split()  # columns as wide as their cells, as kubectl

    [header, row] = ok(status(cluster, "-o", "wide")).splitlines()
    assert header.split()[-3:] == ["POD", "UPDATED", "MESSAGE"]
    assert "web-2  2026-01-01T00:00:00Z  port must be an integer" in row
    [wide_no_header] = ok(status(cluster, "-o", "wide", "--no-headers")).splitlines()
    assert wide_no_header.split() == row.split()

    [as_json] = json.loads(ok(status(cluster, "-o", "json")))
    [as_yaml] = yaml.safe_load(ok(status(cluster, "-o", "yaml")))
    assert as_json == as_yaml
    assert (as_json["phase"], as_json["pod"], as_json["revision"]) == ("halted", "web-2", REVISION)
    assert as_json["current_revision"] == REVISION
    assert ok(status(cluster, "-o", "name", "--no-headers")) == "configmap/web\n"


def test_version() -> None:
    expected = f"hotconf {importlib.metadata.version('hotconf')}\n"
    for args in (["--version"], ["status", "--version"]):
        run = subprocess.run([str(BIN / "kubectl-hotconf"), *args], capture_output=True,
                             text=True, timeout=60, check=False)  # fmt: skip
        assert (run.returncode, run.stdout) == (0, expected), run.stderr


def test_wait_exits_0_once_the_current_revision_is_complete(cluster: Any) -> None:
    put(cluster, "web", annotation("rolling", applied=1, pending=1))
    waiting = subprocess.Popen(
        [str(BIN / "kubectl-hotconf"), "status", "--wait", "--timeout", "60s", "-o", "name"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)},
    )  # fmt: skip
    try:
        time.sleep(2)
        assert waiting.poll() is None, waiting.communicate()
        set_status(cluster, "web", annotation("complete"))
        out, err = waiting.communicate(timeout=30)
    finally:
        waiting.kill()
    assert waiting.returncode == 0, err
    assert out == "configmap/web\n"
    lines = err.splitlines()
    short = REVISION[7:19]
    assert lines[0] == (f'Waiting for configmap "{cluster.namespace}/web" rollout to finish'
                        f" (rolling): 1 of 2 pods applied revision {short}...")  # fmt: skip
    assert lines[-1].endswith(f"successfully rolled out: 2 of 2 pods applied revision {short}")


@pytest.mark.parametrize("phase", ["halted", "rejected"])
def test_wait_exits_4_naming_a_halted_or_rejected_rollout(cluster: Any, phase: str) -> None:
    put(cluster, "good", annotation("complete"))
    put(cluster, "bad", annotation(phase, applied=1, rejected=1, pod="web-2", message="no port"))
    run = status(cluster, "--wait", "--timeout", "30s")
    assert run.returncode == 4, (run.stdout, run.stderr)
    assert f'configmap "{cluster.namespace}/bad" rollout {phase} by pod web-2' in run.stderr
    assert run.stderr.splitlines()[-1] == (
        f"hotconf status: rollout did not complete: {cluster.namespace}/bad ({phase})"
    )
    assert "bad" in run.stdout and "good" in run.stdout  # the final table


def test_wait_times_out_with_3_on_a_stale_or_incomplete_status(cluster: Any) -> None:
    # Complete, but for the content before the last edit: the operator has not caught up.
    put(cluster, "stale", annotation("complete", revision="sha256:" + "0" * 64))
    put(cluster, "slow", annotation("incomplete", applied=1, pending=1))
    started = time.monotonic()
    run = status(cluster, "--wait", "--timeout", "2s")
    assert 2 <= time.monotonic() - started < 20
    assert run.returncode == 3, (run.stdout, run.stderr)
    assert "has not reported revision" in run.stderr
    assert "rollout to finish (incomplete)" in run.stderr
    assert run.stderr.splitlines()[-1].startswith("hotconf status: timed out after 2s")


def test_bad_durations_and_a_timeout_without_wait_are_usage_errors(cluster: Any) -> None:
    for args in (["--wait", "--timeout", "5"], ["--wait", "--timeout", "2x"], ["--timeout", "1m"]):
        run = status(cluster, *args)
        assert run.returncode == 2, (args, run.stderr)
        assert "--timeout" in run.stderr


BLOCK_HEAVY = """
import importlib.abc, sys
HEAVY = {"kopf", "aiohttp", "yarl", "cryptography", "prometheus_client"}
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in HEAVY:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
sys.meta_path.insert(0, Absent())
from hotconf_operator._kubectl_plugin import main
code = main(sys.argv[1:])
loaded = sorted(m for m in sys.modules if m.partition(".")[0] in HEAVY)
assert not loaded, loaded
sys.exit(code)
"""


def test_the_plugin_runs_without_the_operators_dependencies(cluster: Any) -> None:
    put(cluster, "web", annotation("complete"))
    run = subprocess.run(
        [sys.executable, "-c", BLOCK_HEAVY, "status", "--wait", "--timeout", "10s", "-o", "name"],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)},
    )  # fmt: skip
    assert (run.returncode, run.stdout) == (0, "configmap/web\n"), run.stderr


def test_the_kubectl_extra_brings_the_client_yaml_and_jsonschema_alone() -> None:
    """jsonschema: ``rollback`` validates what it would write back as the operator does."""
    kubectl = {
        requirement.name.lower()
        for requirement in map(Requirement, importlib.metadata.requires("hotconf") or [])
        if requirement.marker is not None and requirement.marker.evaluate({"extra": "kubectl"})
    }
    assert kubectl == {"kubernetes", "pyyaml", "jsonschema"}


def kubectl_hotconf(cluster: Any, *args: str) -> subprocess.CompletedProcess[str]:
    """``kubectl hotconf ...`` through kubectl's own plugin lookup on PATH."""
    return subprocess.run(
        [str(KUBECTL), "hotconf", *args], capture_output=True, text=True, timeout=90, check=False,
        env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig),
             "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"},
    )  # fmt: skip


def test_wait_follows_a_real_rollout_by_the_operator(cluster: Any) -> None:
    op = cluster.operator()
    kubectl(cluster.kubeconfig, "apply", "-f", "-",
            stdin=configmap_manifest("app", {"value": "one"}))  # fmt: skip
    try:
        with pods(cluster.api, cluster.workdir, 2, configmap="app",
                  public_key_pem=cluster.public_key_pem) as ps:  # fmt: skip
            first = kubectl_hotconf(cluster, "status", "--wait", "--timeout", "60s", "app")
            assert first.returncode == 0, first.stderr
            assert [p.current().get("value") for p in ps] == ["one"] * 2

            # Edited while the operator is down: the status still says "complete" for "one",
            # and --wait must not take it for the new revision's.
            assert op.stop() == 0, op.logs()[-3000:]
            kubectl(cluster.kubeconfig, "patch", "configmap", "app", "--type=merge",
                    "-p", json.dumps({"data": {"value": "two"}}))  # fmt: skip
            waiting = subprocess.Popen(
                [str(KUBECTL), "hotconf", "status", "--wait", "--timeout", "60s", "-o", "json",
                 "app"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig),
                     "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"},
            )  # fmt: skip
            try:
                time.sleep(3)
                assert waiting.poll() is None, waiting.communicate()
                op = cluster.operator()
                out, err = waiting.communicate(timeout=60)
            finally:
                waiting.kill()
            assert waiting.returncode == 0, err
            assert "has not reported revision" in err
            [row] = json.loads(out)
            assert row["revision"] == row["current_revision"] == ps[0].current()["revision"]
            assert (row["phase"], row["applied"], row["total"]) == ("complete", 2, 2)
            assert [p.current().get("value") for p in ps] == ["two"] * 2

            kubectl(cluster.kubeconfig, "patch", "configmap", "app", "--type=merge",
                    "-p", json.dumps({"data": {"value": "three", "reject": "web-1"}}))  # fmt: skip
            third = kubectl_hotconf(cluster, "status", "--wait", "--timeout", "60s", "app")
            assert third.returncode == 4, (third.stdout, third.stderr)
            assert f'configmap "{cluster.namespace}/app" rollout rejected by pod' in third.stderr
            assert "web-1" in third.stderr
    finally:
        assert op.stop() == 0, op.logs()[-3000:]
