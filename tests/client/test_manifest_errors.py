"""A ConfigMap manifest that `hotconf dev` cannot serve is refused with a message naming the file
and the line of the problem: YAML syntax, not a ConfigMap, bad names, keys and values, embedded
YAML that does not parse (the file's line inside the block), over 1 MiB."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotconf import ConfigParseError
from hotconf._manifest import load_configmap

GOOD = """apiVersion: v1
kind: ConfigMap
metadata:
  name: app
data:
  app.yaml: |
    a: 1
    b: 2
"""


def test_good_manifest_becomes_a_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "cm.yaml"
    path.write_text(GOOD + "binaryData:\n  blob.bin: AAE=\n")
    snapshot = load_configmap(path)
    assert (snapshot.namespace, snapshot.name) == ("default", "app")
    assert snapshot.data == {"app.yaml": "a: 1\nb: 2\n"}
    assert snapshot.binary_data == {"blob.bin": b"\x00\x01"}
    assert snapshot.revision.startswith("sha256:")


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (GOOD.replace("name: app", "name: @app"), 4, "invalid YAML"),
        (GOOD.replace("kind: ConfigMap", "kind: Secret"), 2, "a ConfigMap has 'ConfigMap'"),
        (GOOD.replace("apiVersion: v1", "apiVersion: v2"), 1, "apiVersion is 'v2'"),
        (GOOD.replace("name: app", "name: App_1"), 4, "not a valid name"),
        (GOOD.replace("  name: app\n", "  labels: {}\n"), 3, "metadata.name is missing"),
        (GOOD + "  port: 8080\n", 9, 'data.port must be a string (quote it: "8080")'),
        (GOOD + "  bad key: x\n", 9, "key 'bad key' is not valid"),
        (GOOD.replace("b: 2", "b: @2"), 8, "data.app.yaml: invalid YAML"),
        (GOOD + "spec: {}\n", 9, "unknown field 'spec'"),
        (GOOD + "binaryData:\n  b.bin: '!!'\n", 10, "not valid base64"),
        (GOOD + "---\n" + GOOD, 10, "holds 2 YAML documents"),
    ],
    ids=[
        "yaml",
        "kind",
        "apiVersion",
        "name",
        "no-name",
        "int-value",
        "key",
        "embedded-yaml",
        "unknown-field",
        "base64",
        "two-documents",
    ],
)
def test_bad_manifest_names_file_and_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    path = tmp_path / "cm.yaml"
    path.write_text(text)
    with pytest.raises(ConfigParseError) as info:
        load_configmap(path)
    assert info.value.source == str(path)
    assert info.value.line == line
    assert words in str(info.value)
    assert str(info.value).startswith(f"{path}:{line}: ")


def test_over_one_mib_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cm.yaml"
    path.write_text(GOOD + "  big.txt: " + "x" * (1024 * 1024) + "\n")
    with pytest.raises(ConfigParseError, match="exceed the ConfigMap limit"):
        load_configmap(path)
