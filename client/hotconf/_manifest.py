"""Reads a ConfigMap manifest file (what one would ``kubectl apply``) into a snapshot.

Called by ``hotconf dev`` on start and on every save. Every rule a ConfigMap must follow is
checked here, and a broken one raises :class:`ConfigParseError` naming the file and the line:
the YAML parses, holds one document, ``apiVersion: v1``, ``kind: ConfigMap``, a valid
``metadata.name`` (and ``namespace``), ``data`` values that are strings, ``binaryData`` values
that are base64, valid and unique keys, at most 1 MiB in all, and keys named ``*.yaml``,
``*.json`` or ``*.toml`` whose content parses (the line is the file's line inside the block).
"""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path
from typing import Final

import yaml

from hotconf._config import parse_key
from hotconf._errors import ConfigParseError
from hotconf_wire.protocol import MAX_CONFIG_BYTES, ConfigSnapshot, compute_revision

__all__ = ["load_configmap", "parse_configmap"]

_KEY_RE: Final = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")
_NAME_RE: Final = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_LABEL_RE: Final = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_STR: Final = "tag:yaml.org,2002:str"
_TOP: Final = {"apiVersion", "kind", "metadata", "data", "binaryData", "immutable"}


def load_configmap(path: Path) -> ConfigSnapshot:
    """Read and check ``path``; raise ConfigParseError naming the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigParseError(f"not UTF-8 text: {exc}", source=str(path)) from exc
    except OSError as exc:
        raise ConfigParseError(f"cannot read: {exc.strerror or exc}", source=str(path)) from exc
    return parse_configmap(text, source=str(path))


def _fail(message: str, node: yaml.Node | None, source: str) -> ConfigParseError:
    line = node.start_mark.line + 1 if node is not None else None
    return ConfigParseError(message, source=source, line=line)


def _mapping(node: yaml.Node, what: str, source: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    if not isinstance(node, yaml.MappingNode):
        raise _fail(f"{what} must be a mapping", node, source)
    result: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for key, value in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag != _STR:
            raise _fail(f"{what}: keys must be strings", key, source)
        if key.value in result:
            raise _fail(f"{what}: key {key.value!r} appears twice", key, source)
        result[key.value] = (key, value)
    return result


def _string(node: yaml.Node, what: str, source: str) -> str:
    if not isinstance(node, yaml.ScalarNode) or node.tag != _STR:
        hint = f' (quote it: "{node.value}")' if isinstance(node, yaml.ScalarNode) else ""
        raise _fail(f"{what} must be a string{hint}", node, source)
    return str(node.value)


def parse_configmap(text: str, *, source: str) -> ConfigSnapshot:
    """Check manifest ``text`` (from ``source``) and build its snapshot."""
    try:
        documents = [d for d in yaml.compose_all(text, Loader=yaml.SafeLoader) if d is not None]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigParseError(f"invalid YAML: {exc.problem}", source=source, line=line) from exc
    except yaml.YAMLError as exc:
        raise ConfigParseError(f"invalid YAML: {exc}", source=source) from exc
    if len(documents) != 1:
        raise ConfigParseError(
            f"holds {len(documents)} YAML documents; hotconf dev serves exactly one ConfigMap",
            source=source,
            line=documents[1].start_mark.line + 1 if len(documents) > 1 else None,
        )
    (root,) = documents
    top = _mapping(root, "the manifest", source)
    for field_name, (field_node, _) in top.items():
        if field_name not in _TOP:
            raise _fail(f"unknown field {field_name!r} for a ConfigMap", field_node, source)
    for field, expected in (("apiVersion", "v1"), ("kind", "ConfigMap")):
        if field not in top:
            raise _fail(f"{field} is missing (expected {expected!r})", root, source)
        value = _string(top[field][1], field, source)
        if value != expected:
            raise _fail(
                f"{field} is {value!r}; a ConfigMap has {expected!r}", top[field][1], source
            )
    if "metadata" not in top:
        raise _fail("metadata is missing (metadata.name is required)", root, source)
    metadata = _mapping(top["metadata"][1], "metadata", source)
    if "name" not in metadata:
        raise _fail("metadata.name is missing", top["metadata"][0], source)
    name_node = metadata["name"][1]
    name = _string(name_node, "metadata.name", source)
    if not _NAME_RE.match(name):
        raise _fail(
            f"metadata.name {name!r} is not a valid name (lower-case letters, digits, '-' and '.')",
            name_node,
            source,
        )
    namespace = "default"
    if "namespace" in metadata:
        ns_node = metadata["namespace"][1]
        namespace = _string(ns_node, "metadata.namespace", source)
        if not _LABEL_RE.match(namespace):
            raise _fail(
                f"metadata.namespace {namespace!r} is not a valid namespace", ns_node, source
            )

    data: dict[str, str] = {}
    if "data" in top and not _is_null(top["data"][1]):
        for key, (key_node, value_node) in _mapping(top["data"][1], "data", source).items():
            _check_key(key, key_node, source)
            value = _string(value_node, f"data.{key}", source)
            try:
                parse_key(key, value)
            except ConfigParseError as exc:
                raise ConfigParseError(
                    f"data.{key}: {exc.reason}",
                    source=source,
                    line=_content_line(value_node, exc.line),
                ) from exc
            data[key] = value
    binary: dict[str, bytes] = {}
    if "binaryData" in top and not _is_null(top["binaryData"][1]):
        for key, (key_node, value_node) in _mapping(
            top["binaryData"][1], "binaryData", source
        ).items():
            _check_key(key, key_node, source)
            if key in data:
                raise _fail(f"key {key!r} is in both data and binaryData", key_node, source)
            encoded = _string(value_node, f"binaryData.{key}", source)
            try:
                binary[key] = base64.b64decode("".join(encoded.split()), validate=True)
            except (binascii.Error, ValueError) as exc:
                raise _fail(f"binaryData.{key} is not valid base64", value_node, source) from exc
    snapshot = ConfigSnapshot(namespace, name, compute_revision(data, binary), data, binary)
    if snapshot.size > MAX_CONFIG_BYTES:
        raise ConfigParseError(
            f"{snapshot.size} bytes of data exceed the ConfigMap limit of {MAX_CONFIG_BYTES}",
            source=source,
        )
    return snapshot


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _check_key(key: str, node: yaml.Node, source: str) -> None:
    if not _KEY_RE.match(key):
        raise _fail(
            f"key {key!r} is not valid (letters, digits, '-', '_' and '.', at most 253)",
            node,
            source,
        )


def _content_line(node: yaml.Node, inner: int | None) -> int:
    """The file line of line ``inner`` (1-based) of a scalar's content."""
    assert isinstance(node, yaml.ScalarNode)
    first = node.start_mark.line + 1
    if inner is None:
        return first
    # A block scalar (| or >) starts its content on the line after its indicator.
    offset = 1 if node.style in ("|", ">") else 0
    return first + offset + inner - 1
