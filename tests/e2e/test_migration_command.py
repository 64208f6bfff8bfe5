"""The command docs/operator.md gives for the migration from the inject annotation to the label
("Migrating from the inject annotation", step 2) works as written with kubectl 1.33 on the real
API server: it lists a pod that asks with the annotation alone with ``true`` in its INJECT
column, and leaves out a pod that already has the label."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
from hotconf_e2e import kubectl

pytestmark = pytest.mark.e2e

DOC = Path(__file__).resolve().parents[2] / "docs" / "operator.md"


def documented_command() -> list[str]:
    section = DOC.read_text().split("### Migrating from the inject annotation", 1)[1]
    line = next(ln.strip() for ln in section.splitlines() if ln.strip().startswith("`kubectl get"))
    words = shlex.split(line.strip("`.").strip("`"))
    assert words[0] == "kubectl", words
    return words[1:]


def test_the_documented_command_lists_the_pods_still_to_migrate(cluster: Any) -> None:
    spec = {"containers": [{"name": "app", "image": "example/app"}]}
    cluster.api.create_pod({"metadata": {"name": "old", "annotations": {
        "hotconf.dev/inject": "true"}}, "spec": spec})  # fmt: skip
    cluster.api.create_pod({"metadata": {"name": "done", "labels": {"hotconf.dev/inject": "true"},
                                         "annotations": {"hotconf.dev/inject": "true"}},
                            "spec": spec})  # fmt: skip
    out = kubectl(cluster.kubeconfig, *documented_command())
    rows = [line.split() for line in out.splitlines()]
    assert rows[0] == ["NAMESPACE", "NAME", "INJECT"], out
    mine = [row for row in rows[1:] if row[0] == cluster.namespace]
    assert mine == [[cluster.namespace, "old", "true"]], out
