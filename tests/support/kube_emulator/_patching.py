"""The PATCH flavours of the Kubernetes API, applied to plain JSON objects.

Called by the request handler for PATCH requests, chosen by ``Content-Type``:

- ``application/merge-patch+json``: RFC 7386 JSON merge patch;
- ``application/json-patch+json``: RFC 6902 JSON patch (add, remove, replace, move, copy, test);
- ``application/strategic-merge-patch+json``: a merge patch that also merges lists of named
  items (containers, ports, env ...) by ``name`` and drops the ``$``-directives; this is
  enough for ``kubectl apply`` and ``kubectl patch`` of ConfigMaps, Pods and Deployments;
- ``application/apply-patch+yaml``: server-side apply, treated as a merge patch.

Every function returns a new object and leaves its arguments unchanged.
"""

from __future__ import annotations

import copy
from typing import Any

from ._errors import BadRequest, Invalid, UnsupportedMediaType

MERGE = "application/merge-patch+json"
JSON = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"


def apply_patch(target: dict[str, Any], patch: Any, *, content_type: str) -> dict[str, Any]:
    """Apply ``patch`` of the given media type to a copy of ``target``."""
    media = content_type.split(";")[0].strip().lower()
    if media == JSON:
        if not isinstance(patch, list):
            raise BadRequest("a JSON patch must be a list of operations")
        return json_patch(target, patch)
    if media in (MERGE, APPLY, "application/json"):
        return _as_object(merge_patch(target, patch))
    if media == STRATEGIC:
        return _as_object(strategic_merge_patch(target, patch))
    raise UnsupportedMediaType(
        f"the body of the request was in an unknown format: {content_type!r};"
        f" use one of {JSON}, {MERGE}, {STRATEGIC}, {APPLY}"
    )


def _as_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest("the patched object is not a JSON object")
    return value


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result: dict[str, Any] = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """A merge patch that merges lists of named dicts by ``name`` and ignores directives."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result: dict[str, Any] = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue  # $patch, $retainKeys, $setElementOrder/...: ordering hints, not data
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and _named(value) and _named(result.get(key)):
            result[key] = _merge_named_lists(result[key], value)
        else:
            result[key] = strategic_merge_patch(result.get(key), value)
    return result


def _named(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(item, dict) and "name" in item for item in value
    )


def _merge_named_lists(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[Any]:
    merged = {item["name"]: copy.deepcopy(item) for item in old}
    order = [item["name"] for item in old]
    for item in new:
        name = item["name"]
        if item.get("$patch") == "delete":
            merged.pop(name, None)
            order = [each for each in order if each != name]
        elif name in merged:
            merged[name] = strategic_merge_patch(merged[name], item)
        else:
            merged[name] = strategic_merge_patch({}, item)
            order.append(name)
    return [merged[name] for name in order]


def json_patch(target: dict[str, Any], operations: list[Any]) -> dict[str, Any]:
    """RFC 6902, applied to a copy of ``target``; a failed ``test`` raises ``Invalid``."""
    document: Any = copy.deepcopy(target)
    for operation in operations:
        if not isinstance(operation, dict) or "op" not in operation or "path" not in operation:
            raise BadRequest(f"malformed JSON patch operation: {operation!r}")
        op, path = operation["op"], _pointer(operation["path"])
        if op == "add":
            document = _add(document, path, copy.deepcopy(operation.get("value")))
        elif op == "remove":
            _remove(document, path)
        elif op == "replace":
            _remove(document, path)
            document = _add(document, path, copy.deepcopy(operation.get("value")))
        elif op in ("move", "copy"):
            source = _pointer(operation.get("from", ""))
            value = copy.deepcopy(_get(document, source))
            if op == "move":
                _remove(document, source)
            document = _add(document, path, value)
        elif op == "test":
            if _get(document, path) != operation.get("value"):
                raise Invalid(f"the JSON patch test failed at {operation['path']!r}")
        else:
            raise BadRequest(f"unknown JSON patch operation: {op!r}")
    return _as_object(document)


def _pointer(text: str) -> list[str]:
    if text == "":
        return []
    if not text.startswith("/"):
        raise BadRequest(f"a JSON pointer must start with '/': {text!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in text[1:].split("/")]


def _parent(document: Any, path: list[str]) -> Any:
    node = document
    for part in path[:-1]:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise Invalid(f"the JSON patch path does not exist: /{'/'.join(path)}")
    return node


def _get(document: Any, path: list[str]) -> Any:
    if not path:
        return document
    parent = _parent(document, path)
    key = path[-1]
    if isinstance(parent, dict) and key in parent:
        return parent[key]
    if isinstance(parent, list) and key.isdigit() and int(key) < len(parent):
        return parent[int(key)]
    raise Invalid(f"the JSON patch path does not exist: /{'/'.join(path)}")


def _add(document: Any, path: list[str], value: Any) -> Any:
    if not path:
        return value
    parent = _parent(document, path)
    key = path[-1]
    if isinstance(parent, dict):
        parent[key] = value
    elif isinstance(parent, list):
        index = len(parent) if key == "-" else int(key) if key.isdigit() else -1
        if not 0 <= index <= len(parent):
            raise Invalid(f"the JSON patch index is out of range: /{'/'.join(path)}")
        parent.insert(index, value)
    else:
        raise Invalid(f"the JSON patch path does not exist: /{'/'.join(path)}")
    return document


def _remove(document: Any, path: list[str]) -> None:
    _get(document, path)  # raises Invalid if absent
    parent = _parent(document, path)
    if isinstance(parent, dict):
        del parent[path[-1]]
    else:
        del parent[int(path[-1])]
