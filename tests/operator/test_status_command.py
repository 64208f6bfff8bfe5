"""`hotconf status` (the client CLI, with the operator extra's plugin) and `kubectl-hotconf`
read the same hotconf.dev/status annotations from the API and print them as a table or JSON;
an unreachable API is a clear error and exit status 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent

MANIFEST = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
  namespace: default
  labels: {"hotconf.dev/enabled": "true"}
  annotations:
    hotconf.dev/status: '{"revision": "sha256:0123456789abcdef", "phase": "halted", "applied": 1,
      "rejected": 1, "pending": 0, "total": 2, "pod": "default/web-2",
      "message": "port must be an integer", "time": "2026-01-01T00:00:00Z"}'
data: {"app.yaml": "port: x"}
"""


def run(command: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / command), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("command", [["hotconf", "status"], ["kubectl-hotconf", "status"]])
def test_status_shows_what_the_operator_wrote(
    command: list[str], kubectl: object, kube_env: dict[str, str]
) -> None:
    kubectl("apply", "--validate=false", "-f", "-", input=MANIFEST)  # type: ignore[operator]
    table = run(*command, env=kube_env)
    assert table.returncode == 0, table.stderr
    [header, row] = table.stdout.strip().splitlines()
    assert header.split()[:3] == ["NAMESPACE", "NAME", "REVISION"]
    assert row.split()[:4] == ["default", "web-config", "0123456789ab", "halted"]
    assert "port must be an integer" in row

    as_json = run(*command, "-n", "default", "-o", "json", "web-config", env=kube_env)
    assert as_json.returncode == 0, as_json.stderr
    [item] = json.loads(as_json.stdout)
    assert (item["applied"], item["rejected"], item["total"]) == (1, 1, 2)
    assert item["pod"] == "default/web-2"


def test_unreachable_api_is_a_clear_error(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\nusers: [{name: u, user: {}}]\n"
    )
    result = run("hotconf", "status", env={"KUBECONFIG": str(kubeconfig)})
    assert result.returncode == 1
    assert result.stderr.startswith("hotconf status:")
