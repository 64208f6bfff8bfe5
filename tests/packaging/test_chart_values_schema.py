"""values.schema.json guards the chart's values: an unknown key (at the top or nested), a value
outside an enum or a wrong type makes `helm template` and `helm lint` fail and name the field;
every object in the schema closes itself with additionalProperties: false (Kubernetes pass-through
types excepted, by name) and every field has a description; every key of values.yaml is in it."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

# Kubernetes API types passed through as is: the API server validates them.
PASS_THROUGH = {
    "global",
    "webhook.namespaceSelector",
    "webhook.objectSelector",
    "podSecurityContext",
    "securityContext",
    "sidecar.securityContext",
    "affinity",
    "tolerations",
    "extraEnv[].valueFrom",
    "extraVolumes[]",
    "topologySpreadConstraints[]",
    "metrics.serviceMonitor.relabelings[]",
    "metrics.serviceMonitor.metricRelabelings[]",
    "metrics.podMonitor.relabelings[]",
    "metrics.podMonitor.metricRelabelings[]",
    "networkPolicy.metricsFrom[]",
    "networkPolicy.extraIngress[]",
    "networkPolicy.extraEgress[]",
}
MAPS = {
    "serviceAccount.annotations",
    "metrics.serviceMonitor.labels",
    "metrics.podMonitor.labels",
    "podAnnotations",
    "podLabels",
    "nodeSelector",
}


def schema(chart) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((chart.path / "values.schema.json").read_text())
    return loaded


def walk(node: dict[str, Any], path: str = ""):
    yield path, node
    for key, child in node.get("properties", {}).items():
        yield from walk(child, f"{path}.{key}" if path else key)
    items = node.get("items")
    if isinstance(items, dict):
        yield from walk(items, f"{path}[]")


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("bogus=1", "additional properties 'bogus' not allowed"),
        ("webhook.certManager.bogus=1", "additional properties 'bogus' not allowed"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("logLevel=loud", "/logLevel"),
        ("webhook.failurePolicy=Maybe", "/webhook/failurePolicy"),
        ("webhook.timeoutSeconds=60", "/webhook/timeoutSeconds"),
        ("ports.metrics=http", "/ports/metrics"),
        ("watchNamespaces[0]=Not_A_Namespace", "/watchNamespaces/0"),
        ("sidecar.resources.requests.gpu=1", "additional properties 'gpu' not allowed"),
        ("image.digest=latest", "/image/digest"),
        ("extraEnv[0].value=x", "missing property 'name'"),
        ("extraVolumeMounts[0].name=x", "missing property 'mountPath'"),
    ],
)
def test_bad_values_fail_template_and_lint(chart, setting: str, complaint: str) -> None:
    templated = chart.template("--set", setting)
    assert templated.returncode != 0, f"helm template accepted --set {setting}"
    assert complaint in templated.stderr
    linted = chart.run("lint", str(chart.path), "--set", setting)
    assert linted.returncode != 0, f"helm lint accepted --set {setting}"


def test_the_same_call_accepts_good_values(chart) -> None:
    # Proves the failures above come from the values, not from the call.
    assert chart.template("--set", "logLevel=debug", "--set", "ports.metrics=9100").returncode == 0


def test_every_schema_object_is_closed_and_described(chart) -> None:
    root = schema(chart)
    assert root["additionalProperties"] is False
    for path, node in walk(root):
        if path:
            assert node.get("description"), f"{path}: no description"
        if node.get("type") == "object" and path not in PASS_THROUGH | MAPS:
            assert node.get("additionalProperties") is False, f"{path}: not closed"


def test_every_value_is_in_the_schema(chart) -> None:
    values = yaml.safe_load((chart.path / "values.yaml").read_text())
    root = schema(chart)

    def check(value: Any, node: dict[str, Any], path: str) -> None:
        if path in PASS_THROUGH | MAPS or not isinstance(value, dict):
            return
        for key, child in value.items():
            where = f"{path}.{key}" if path else key
            assert key in node.get("properties", {}), (
                f"{where} is in values.yaml, not in the schema"
            )
            check(child, node["properties"][key], where)

    check(values, root, "")


def test_every_value_has_a_comment(chart) -> None:
    # A key is documented by a comment on the line(s) just above it, or by one above an
    # enclosing key whose default is a whole block (e.g. `resources:` with its requests/limits).
    lines = (chart.path / "values.yaml").read_text().splitlines()
    open_keys: list[tuple[int, bool]] = []  # (indent, commented) of the keys enclosing a line
    for number, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or ":" not in stripped:
            continue
        indent = len(line) - len(line.lstrip())
        while open_keys and open_keys[-1][0] >= indent:
            open_keys.pop()
        if stripped.startswith("- "):
            continue  # a list item: part of its key's documented default
        key, _, rest = stripped.partition(":")
        commented = number > 0 and lines[number - 1].strip().startswith("#")
        documented = commented or any(enclosing for _, enclosing in open_keys)
        if rest.strip():
            assert documented, f"values.yaml:{number + 1}: {key} has no comment"
        open_keys.append((indent, commented))
