"""End to end at the API server's size limit for ConfigMaps: 1 MiB of values (data and
binaryData; the keys do not count, as measured here against kube-apiserver 1.37).

Proves: a ConfigMap whose data is exactly at the limit is stored and rolled out whole to the
worker; one byte over it is refused by the API server with a message naming the limit, and
nothing is lost: the worker keeps running the last good config and the status still names it.
The history keeps a revision at the limit too, in the two cases that make its record biggest.
(``kubectl apply`` without ``--server-side`` cannot write a ConfigMap this big at all: its
last-applied annotation would exceed the 256 KiB limit on annotations; users create, replace or
apply server-side, as here.)
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from typing import Any

import pytest
from hotconf_e2e import KUBECTL, kubectl, pods, wait_for

pytestmark = pytest.mark.e2e

LIMIT = 1024 * 1024  # bytes of the values of data and binaryData (core.MaxConfigMapSize)


def manifest(value: str, size: int) -> str:
    """A ConfigMap with ``value`` and a ``blob`` whose values make ``size`` bytes in all."""
    blob = "x" * (size - len(value))
    return json.dumps({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "app", "labels": {"hotconf.dev/enabled": "true"}},
        "data": {"value": value, "blob": blob},
    })  # fmt: skip


def test_at_the_limit_rolls_out_and_over_it_is_refused(cluster: Any, operator: Any) -> None:
    kubectl(cluster.kubeconfig, "create", "-f", "-", stdin=manifest("one", LIMIT))
    with pods(cluster.api, cluster.workdir, 1, configmap="app",
              public_key_pem=cluster.public_key_pem) as [pod]:  # fmt: skip
        wait_for("the 1 MiB config", lambda: pod.current().get("value") == "one", timeout=30)
        assert pod.current()["size"] == LIMIT
        status = wait_for("status", lambda: (s := cluster.api.status_of("app")) and s["applied"]
                          and s)  # fmt: skip
        assert status["phase"] == "complete"

        over = subprocess.run(
            [str(KUBECTL), "--kubeconfig", str(cluster.kubeconfig), "replace", "-f", "-"],
            input=manifest("two", LIMIT + 1), capture_output=True, text=True, timeout=60,
            check=False,
        )  # fmt: skip
        assert over.returncode != 0
        assert "Too long" in over.stderr and "1048576" in over.stderr, over.stderr
        # Nothing changed anywhere: the API kept the old object, the worker its config.
        assert cluster.api.get_cm("app")["data"]["value"] == "one"
        assert pod.current()["value"] == "one" and pod.current()["generation"] == 1
        assert cluster.api.status_of("app")["revision"] == status["revision"]


def history(cluster: Any) -> list[dict[str, Any]]:
    path = f"/apis/apps/v1/namespaces/{cluster.namespace}/controllerrevisions"
    return list(cluster.api.request("GET", path)["items"])


def test_the_history_keeps_a_configmap_at_the_limit_in_the_worst_cases(
    cluster: Any, operator: Any
) -> None:
    """1 MiB of random binaryData (its base64 is a third bigger, and it does not compress) and
    1 MiB of values that JSON doubles (quotes and newlines) are both recorded, and read back
    as the same content (``hotconf rollback`` could write them back)."""
    from hotconf_operator._history import entry_of

    noise = os.urandom(LIMIT)
    body: dict[str, Any] = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "app", "labels": {"hotconf.dev/enabled": "true"}},
        "binaryData": {"blob.bin": base64.b64encode(noise).decode()},
    }  # fmt: skip
    kubectl(cluster.kubeconfig, "create", "-f", "-", stdin=json.dumps(body))
    (record,) = wait_for("recorded", lambda: history(cluster))
    entry = entry_of(record)
    assert entry is not None and entry.content == ({}, {"blob.bin": noise})
    assert entry.snapshot(cluster.namespace, "app") is not None

    escaped = '"\n' * (LIMIT // 2)
    body = {**body, "data": {"blob": escaped}, "binaryData": None}
    body["metadata"] = {**body["metadata"], "resourceVersion": None}
    kubectl(cluster.kubeconfig, "replace", "-f", "-", stdin=json.dumps(body))
    wait_for("recorded again", lambda: len(history(cluster)) == 2)
    records = sorted(history(cluster), key=lambda r: r["revision"])
    assert "gzip" in records[1]["data"]
    entry = entry_of(records[1])
    assert entry is not None and entry.content == ({"blob": escaped}, {})
    assert "cannot write the history" not in operator.logs()
