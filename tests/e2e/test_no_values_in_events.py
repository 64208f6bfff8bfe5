"""End to end: a failing validation names keys, paths and rules, and never a config value.

Proves the security model's promise for the places a failing validation writes to: a ConfigMap
whose keys break a schema in several ways (a type, an enum, a pattern, a length, an unknown
property) and one whose YAML quotes the text in its parser error (an undefined alias) carry a
marker value; no Warning Event, no annotation on the ConfigMap and no line of the operator's log
contains it, while the Event and the status still name the key, the path and the rule.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hotconf_e2e import configmap_manifest, kubectl, wait_for

pytestmark = pytest.mark.e2e

MARKER = "s3cr3t-marker-7f1d"
SCHEMAS = {
    "a.yaml": {"properties": {"max": {"type": "integer"}}},
    "b.yaml": {"properties": {"mode": {"enum": ["fast", "safe"]}}},
    "c.yaml": {"properties": {"host": {"pattern": "^[a-z.]+$"}}},
    "d.yaml": {"properties": {"name": {"maxLength": 4}}},
    "e.yaml": {"additionalProperties": False, "properties": {"x": {}}},
}
BAD = {
    "a.yaml": f"max: {MARKER}\n",
    "b.yaml": f"mode: {MARKER}\n",
    "c.yaml": f"host: {MARKER}-1\n",
    "d.yaml": f"name: {MARKER}\n",
    "e.yaml": "x: 1\nextra: 2\n",
    "f.yaml": f"pw: *{MARKER}\n",  # PyYAML quotes the alias: found undefined alias '...'
}


def test_a_failing_validation_writes_no_value_anywhere(cluster: Any, operator: Any) -> None:
    annotations = {f"hotconf.dev/schema.{k}": json.dumps(v) for k, v in SCHEMAS.items()}
    good = {"a.yaml": "max: 1\n", "b.yaml": "mode: fast\n", "c.yaml": "host: a.b\n",
            "d.yaml": "name: ab\n", "e.yaml": "x: 1\n", "f.yaml": "pw: one\n"}  # fmt: skip
    kubectl(cluster.kubeconfig, "apply", "-f", "-",
            stdin=configmap_manifest("app", good, annotations=annotations))  # fmt: skip
    wait_for("valid", lambda: (s := cluster.api.status_of("app")) and s["phase"] != "invalid")
    cluster.api.patch_cm("app", {"data": BAD})
    status = wait_for(
        "invalid", lambda: (s := cluster.api.status_of("app")) and s["phase"] == "invalid" and s
    )
    events = wait_for(
        "ValidationFailed",
        lambda: [e for e in cluster.api.events() if e.get("reason") == "ValidationFailed"],
    )
    everything = {
        "events": json.dumps(cluster.api.events()),
        "annotations": json.dumps(cluster.api.get_cm("app")["metadata"].get("annotations")),
        "operator log": operator.logs(),
    }
    assert "ValidationFailed" in everything["events"] and "is invalid" in everything["operator log"]
    assert [where for where, text in everything.items() if MARKER in text] == []
    (event,) = events
    message = event["message"]
    for key in ("a.yaml", "b.yaml", "c.yaml", "d.yaml", "e.yaml", "f.yaml"):
        assert key in message, message
    assert 'a.yaml: schema violation at max: rule "type": expected type "integer"' in message
    assert 'rule "enum"' in message and 'rule "pattern"' in message
    assert 'rule "maxLength"' in message and "undefined alias (text withheld)" in message
    assert status["message"].startswith("a.yaml: schema violation at max")
