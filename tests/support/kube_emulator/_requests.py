"""Turn an incoming HTTP request into a kmock ``Request`` with its Kubernetes meaning.

Called by the handler (``_emulator.KubeEmulator.__call__``) instead of kmock's own parser,
which fails on ``/api/v1/namespaces`` (it takes ``namespaces`` for a namespace prefix), sees a
watch only in ``watch=true`` (the official client sends ``watch=True``), knows no PUT and
reads no YAML bodies (server-side apply).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp.web
import kmock
import yaml

_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})


@dataclass(frozen=True, kw_only=True)
class ApiPath:
    """The Kubernetes parts of a URL path; ``group`` is None for non-API paths."""

    group: str | None = None
    version: str | None = None
    plural: str | None = None
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None
    watch: bool = False  # the deprecated /watch/ path prefix


def parse_path(path: str) -> ApiPath:
    parts = [part for part in path.strip("/").split("/") if part]
    version: str | None
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 2 and parts[0] == "apis":
        group, version, rest = parts[1], (parts[2] if len(parts) > 2 else None), parts[3:]
    else:
        return ApiPath()
    watch = bool(rest) and rest[0] == "watch"
    if watch:
        rest = rest[1:]
    namespace = None
    is_namespace_itself = len(rest) == 3 and rest[2] in _NAMESPACE_SUBRESOURCES
    if len(rest) >= 3 and rest[0] == "namespaces" and not is_namespace_itself:
        namespace, rest = rest[1], rest[2:]
    return ApiPath(
        group=group,
        version=version,
        plural=rest[0] if rest else None,
        namespace=namespace,
        name=rest[1] if len(rest) > 1 else None,
        subresource="/".join(rest[2:]) or None,
        watch=watch,
    )


def _parse_body(body: bytes, content_type: str) -> Any:
    if not body:
        return None
    media = content_type.split(";")[0].strip().lower()
    if "protobuf" in media:
        return None  # the handler answers 415 for a body it cannot read
    try:
        if media.endswith("yaml"):
            return yaml.safe_load(body)
        return json.loads(body)
    except ValueError:
        return None


def _action(api: ApiPath, method: str, watch: bool) -> kmock.action | None:
    if api.group is None:
        return None
    if method == "GET":
        return (
            kmock.action.WATCH if watch else kmock.action.FETCH if api.name else kmock.action.LIST
        )
    if method == "POST" and api.name is None:
        return kmock.action.CREATE
    if method in ("PATCH", "PUT") and api.name is not None:
        return kmock.action.UPDATE
    if method == "DELETE" and api.name is not None:
        return kmock.action.DELETE
    return None


async def parse_request(raw: aiohttp.web.BaseRequest, *, id: int) -> kmock.Request:
    body = await raw.read()
    content_type = raw.headers.get("Content-Type", "")
    api = parse_path(raw.path)
    query = dict(raw.query)
    watch = api.watch or query.get("watch", "").lower() in ("true", "1")
    resource = None
    if api.group is not None:
        resource = kmock.resource(group=api.group, version=api.version, plural=api.plural)
    return kmock.Request(
        id=id,
        raw_request=raw,
        url=raw.url,
        method=raw.method,
        params=query,
        headers=dict(raw.headers),
        cookies=dict(raw.cookies),
        body=body,
        text=body.decode("utf-8", errors="replace"),
        data=_parse_body(body, content_type),
        action=_action(api, raw.method, watch),
        resource=resource,
        namespace=api.namespace,
        name=api.name,
        subresource=api.subresource,
    )
