"""End to end: ``kubectl hotconf history`` and ``kubectl hotconf rollback`` with a real operator.

Proves, through kubectl's own plugin lookup, against revisions the operator recorded: history
lists the revisions newest first with their outcome, pods and who changed them, marking the one
the ConfigMap holds now; ``rollback --dry-run`` names the keys it would add, change and remove
and writes nothing; a rollback to a revision the ConfigMap's schema (changed since) no longer
accepts is refused with the rule, exit 4, and the ConfigMap is not written; a rollback to an
unknown revision is refused; ``rollback`` without ``--to`` writes the previous good revision
back, the operator rolls it out to every pod and the history shows it as the newest revision,
changed by ``hotconf-rollback``. No command prints a config value.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import pytest
from hotconf_e2e import BIN, KUBECTL, configmap_manifest, kubectl, pods, wait_for

pytestmark = pytest.mark.e2e

ONE = {"value": "v-alpha-111", "app.yaml": "port: 1\n"}
TWO = {"value": "v-beta-222", "app.yaml": "port: 2\n", "extra": "v-gamma-333"}
VALUES = ("v-alpha-111", "v-beta-222", "v-gamma-333")


def hotconf(cluster: Any, *args: str) -> subprocess.CompletedProcess[str]:
    """``kubectl hotconf ...`` through kubectl's plugin lookup on PATH."""
    run = subprocess.run(
        [str(KUBECTL), "hotconf", *args], capture_output=True, text=True, timeout=90, check=False,
        env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig),
             "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"},
    )  # fmt: skip
    for value in VALUES:
        assert value not in run.stdout + run.stderr, (args, run.stdout, run.stderr)
    return run


def complete(cluster: Any, data: dict[str, str]) -> bool:
    from hotconf_wire.protocol import compute_revision

    status = cluster.api.status_of("app") or {}
    return status.get("revision") == compute_revision(data) and status["phase"] == "complete"


def history(cluster: Any) -> list[dict[str, Any]]:
    run = hotconf(cluster, "history", "app", "-o", "json")
    assert run.returncode == 0, run.stderr
    rows: list[dict[str, Any]] = json.loads(run.stdout)
    return rows


def test_history_and_rollback(cluster: Any, operator: Any) -> None:
    kubectl(cluster.kubeconfig, "apply", "-f", "-", stdin=configmap_manifest("app", ONE))
    with pods(cluster.api, cluster.workdir, 2, configmap="app",
              public_key_pem=cluster.public_key_pem) as ps:  # fmt: skip
        wait_for("one complete", lambda: complete(cluster, ONE))
        # Both workers run ONE before TWO is written: a worker still starting when a revision
        # is rolled out counts as held, not applied, and the table below counts TWO's pods.
        wait_for(
            "one everywhere", lambda: [p.current().get("value") for p in ps] == [ONE["value"]] * 2
        )
        cluster.api.patch_cm("app", {"data": TWO})
        wait_for("two complete", lambda: complete(cluster, TWO))
        wait_for(
            "two recorded", lambda: [r["outcome"] for r in history(cluster)] == ["complete"] * 2
        )

        table = hotconf(cluster, "history", "app")
        assert table.returncode == 0, table.stderr
        header, newest, oldest = table.stdout.splitlines()
        assert header.split() == ["REVISION", "CONTENT", "AGE", "OUTCOME", "APPLIED", "TOTAL",
                                  "CHANGED-BY", "MESSAGE"]  # fmt: skip
        assert newest.split()[0] == "2*" and newest.split()[3:6] == ["complete", "2", "2"]
        assert oldest.split()[0] == "1" and "kubectl-client-side-apply" in oldest
        rows = history(cluster)
        assert [(r["revision"], r["current"]) for r in rows] == [(2, True), (1, False)]

        # --dry-run: key names only, nothing written.
        before = cluster.api.get_cm("app")["metadata"]["resourceVersion"]
        dry = hotconf(cluster, "rollback", "app", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert "would roll back to revision 1" in dry.stdout
        assert "  ~ app.yaml\n" in dry.stdout and "  ~ value\n" in dry.stdout
        assert "  - extra\n" in dry.stdout and "0 added, 2 changed, 1 removed" in dry.stdout
        assert cluster.api.get_cm("app")["metadata"]["resourceVersion"] == before

        # The schema changed since revision 1: it is refused with the rule, nothing written.
        schema = json.dumps({"properties": {"port": {"minimum": 2}}})
        cluster.api.patch_cm(
            "app", {"metadata": {"annotations": {"hotconf.dev/schema.app.yaml": schema}}}
        )
        before = cluster.api.get_cm("app")["metadata"]["resourceVersion"]
        refused = hotconf(cluster, "rollback", "app")
        assert refused.returncode == 4, (refused.stdout, refused.stderr)
        assert "revision 1 no longer passes validation, nothing changed" in refused.stderr
        assert 'app.yaml: schema violation at port: rule "minimum"' in refused.stderr
        assert cluster.api.get_cm("app")["metadata"]["resourceVersion"] == before
        unknown = hotconf(cluster, "rollback", "app", "--to", "9")
        assert (
            unknown.returncode == 4 and "has no revision 9; its history has 2, 1" in unknown.stderr
        )

        # Without that schema, the rollback writes revision 1 back, and it rolls out.
        cluster.api.patch_cm(
            "app", {"metadata": {"annotations": {"hotconf.dev/schema.app.yaml": None}}}
        )
        done = hotconf(cluster, "rollback", "app")
        assert done.returncode == 0, done.stderr
        assert 'configmap "' in done.stdout and "rolled back to revision 1" in done.stdout
        wait_for(
            "one everywhere", lambda: [p.current().get("value") for p in ps] == [ONE["value"]] * 2
        )
        assert cluster.api.get_cm("app")["data"] == ONE
        wait_for(
            "one is revision 3",
            lambda: (
                [(r["revision"], r["current"]) for r in history(cluster)] == [(3, True), (2, False)]
            ),
        )
        assert history(cluster)[0]["changed_by"] == "hotconf-rollback"
        again = hotconf(cluster, "rollback", "app", "--to", "3")
        assert again.returncode == 0 and "already holds revision 3" in again.stdout
