"""End to end: a JSON Schema kept in another ConfigMap (``hotconf.dev/schema.<key>: "cm/key"``).

Proves: a ConfigMap valid against the schema rolls out; a revision that violates it is pushed
nowhere (every sidecar keeps its revision, no worker restarts, no push is counted), the status
says ``invalid`` and a ``ValidationFailed`` warning Event names the key and the schema error; the
fixed revision then rolls out; a schema reference to a ConfigMap that does not exist, or to a key
it lacks, is a validation error that says which one; fixing only the annotation rolls the
revision out that then passes; a changed schema that the running revision fails is a
``SchemaCheckFailed`` warning, and the pods keep what they run.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hotconf_e2e import configmap_manifest, kubectl, pods, wait_for

pytestmark = pytest.mark.e2e

SCHEMA = {
    "type": "object",
    "properties": {"port": {"type": "integer"}},
    "required": ["port"],
}
ANNOTATIONS = {"hotconf.dev/schema.app.yaml": "app-schema/app.schema.json"}


def schema_configmap() -> str:
    # The schema ConfigMap is not labelled hotconf.dev/enabled: it is never rolled out itself.
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "app-schema"},
            "data": {"app.schema.json": json.dumps(SCHEMA)},
        }
    )


def validation_events(cluster: Any, reason: str = "ValidationFailed") -> list[str]:
    return [
        e.get("message", "")
        for e in cluster.api.events()
        if e.get("reason") == reason and e.get("type") == "Warning"
    ]


def test_schema_from_another_configmap(cluster: Any, operator: Any) -> None:
    kubectl(cluster.kubeconfig, "apply", "-f", "-", stdin=schema_configmap())
    kubectl(cluster.kubeconfig, "apply", "-f", "-",
            stdin=configmap_manifest("app", {"value": "one", "app.yaml": "port: 8080\n"},
                                     annotations=ANNOTATIONS))  # fmt: skip
    with pods(cluster.api, cluster.workdir, 2, configmap="app",
              public_key_pem=cluster.public_key_pem) as ps:  # fmt: skip
        wait_for(
            "valid config everywhere", lambda: [p.current().get("value") for p in ps] == ["one"] * 2
        )
        wait_for(
            "complete", lambda: (s := cluster.api.status_of("app")) and s["phase"] == "complete"
        )
        held = [p.state()["configmaps"][0]["revision"] for p in ps]
        pushes = [p.pushes_received() for p in ps]

        cluster.api.patch_cm("app", {"data": {"value": "two", "app.yaml": "port: eighty\n"}})
        status = wait_for(
            "invalid status",
            lambda: (s := cluster.api.status_of("app")) and s["phase"] == "invalid" and s,
        )
        assert "app.yaml" in status["message"]
        assert "schema violation at port" in status["message"]
        assert 'rule "type": expected type "integer"' in status["message"]
        (message,) = wait_for("ValidationFailed event", lambda: validation_events(cluster))
        assert "app.yaml" in message and 'expected type "integer"' in message, message
        assert "eighty" not in message and "eighty" not in status["message"]
        # Pushed nowhere: same revision held, no push received, no worker restarted.
        assert [p.state()["configmaps"][0]["revision"] for p in ps] == held
        assert [p.pushes_received() for p in ps] == pushes
        assert [p.current()["generation"] for p in ps] == [1, 1]
        assert operator.metric("hotconf_operator_invalid_configmaps_total") == 1

        cluster.api.patch_cm("app", {"data": {"value": "three", "app.yaml": "port: 9090\n"}})
        wait_for(
            "fixed config everywhere",
            lambda: [p.current().get("value") for p in ps] == ["three"] * 2,
        )
        wait_for(
            "complete again",
            lambda: (s := cluster.api.status_of("app")) and s["phase"] == "complete",
        )
        assert [p.current()["generation"] for p in ps] == [2, 2]

        # A schema reference to a missing ConfigMap (or a missing key) is a validation error.
        cluster.api.patch_cm(
            "app",
            {
                "metadata": {
                    "annotations": {"hotconf.dev/schema.app.yaml": "nope/app.schema.json"}
                },
                "data": {"value": "four"},
            },
        )
        status = wait_for(
            "invalid: missing schema ConfigMap",
            lambda: (s := cluster.api.status_of("app")) and s["phase"] == "invalid" and s,
        )
        assert "app.yaml" in status["message"], status
        assert f"{cluster.namespace}/nope" in status["message"], status
        assert "does not exist" in status["message"], status
        cluster.api.patch_cm(
            "app",
            {
                "metadata": {
                    "annotations": {"hotconf.dev/schema.app.yaml": "app-schema/other.json"}
                },
                "data": {"value": "five"},
            },
        )
        status = wait_for(
            "invalid: missing schema key",
            lambda: (s := cluster.api.status_of("app")) and s["phase"] == "invalid"
            and "other.json" in s["message"] and s,
        )  # fmt: skip
        assert f"{cluster.namespace}/app-schema has no key other.json" in status["message"], status
        assert [p.current().get("value") for p in ps] == ["three"] * 2

        # Only the annotation is fixed: the same data is validated again, passes, rolls out.
        generations = [p.current()["generation"] for p in ps]
        cluster.api.patch_cm("app", {"metadata": {"annotations": ANNOTATIONS}})
        wait_for(
            "revalidated config everywhere",
            lambda: [p.current().get("value") for p in ps] == ["five"] * 2,
        )
        wait_for(
            "complete after the schema fix",
            lambda: (s := cluster.api.status_of("app")) and s["phase"] == "complete",
        )
        assert [p.current()["generation"] for p in ps] == [g + 1 for g in generations]

        # A schema the running revision fails: a warning, nothing pushed, nothing restarted.
        pushes = [p.pushes_received() for p in ps]
        strict = json.dumps({**SCHEMA, "required": ["port", "host"]})
        cluster.api.patch_cm(
            "app", {"metadata": {"annotations": {"hotconf.dev/schema.app.yaml": strict}}}
        )
        (message,) = wait_for(
            "SchemaCheckFailed event",
            lambda: validation_events(cluster, "SchemaCheckFailed"),
        )
        assert "missing required property 'host'" in message and "keep it" in message, message
        assert [p.pushes_received() for p in ps] == pushes
        assert [p.current().get("value") for p in ps] == ["five"] * 2
        assert cluster.api.status_of("app")["phase"] == "complete"
