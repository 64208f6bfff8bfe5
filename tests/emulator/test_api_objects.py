"""The emulator stores objects as a real API server does, over real HTTP.

Proves: /api/v1/namespaces lists; objects get resourceVersion, uid, creationTimestamp; the
namespace of the URL lands in the metadata; PUT replaces; a no-op patch changes nothing;
/api/v1 discovery reports groupVersion "v1"; both kinds of Events are creatable; the pod
status subresource changes the status only; finalizers hold a deletion; errors are standard
Status objects (NotFound, AlreadyExists, Conflict, Invalid, BadRequest).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from kube_emulator import EmulatorServer

CMS = "/api/v1/namespaces/default/configmaps"
MERGE = {"Content-Type": "application/merge-patch+json"}


@pytest.fixture
async def http(kube_emulator_server: EmulatorServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(kube_emulator_server.url) as session:
        yield session


async def call(
    session: aiohttp.ClientSession, method: str, url: str, *, status: int = 200, **kwargs: Any
) -> Any:
    async with session.request(method, url, **kwargs) as response:
        body = await response.json()
        assert response.status == status, body
        return body


async def test_namespaces_are_listed_and_created(http: aiohttp.ClientSession) -> None:
    listed = await call(http, "GET", "/api/v1/namespaces")
    names = {item["metadata"]["name"] for item in listed["items"]}
    assert {"default", "kube-system"} <= names
    await call(
        http, "POST", "/api/v1/namespaces", json={"metadata": {"name": "team-a"}}, status=201
    )
    fetched = await call(http, "GET", "/api/v1/namespaces/team-a")
    assert fetched["kind"] == "Namespace"
    assert fetched["status"] == {"phase": "Active"}
    assert "namespace" not in fetched["metadata"]


async def test_created_object_has_server_metadata(http: aiohttp.ClientSession) -> None:
    created = await call(
        http,
        "POST",
        "/api/v1/namespaces/team-b/configmaps",
        json={"metadata": {"name": "app"}, "data": {"k": "v"}},
        status=201,
    )
    meta = created["metadata"]
    assert meta["namespace"] == "team-b"
    assert meta["resourceVersion"].isdigit()
    assert len(meta["uid"]) == 36
    assert meta["creationTimestamp"].endswith("Z")
    assert created["apiVersion"] == "v1" and created["kind"] == "ConfigMap"
    fetched = await call(http, "GET", "/api/v1/namespaces/team-b/configmaps/app")
    assert fetched == created


async def test_generate_name(http: aiohttp.ClientSession) -> None:
    created = await call(http, "POST", CMS, json={"metadata": {"generateName": "x-"}}, status=201)
    assert created["metadata"]["name"].startswith("x-")
    assert len(created["metadata"]["name"]) == 7


async def test_resource_version_grows_with_each_write(http: aiohttp.ClientSession) -> None:
    first = await call(http, "POST", CMS, json={"metadata": {"name": "a"}}, status=201)
    second = await call(http, "PATCH", f"{CMS}/a", json={"data": {"k": "v"}}, headers=MERGE)
    listed = await call(http, "GET", CMS)
    assert int(second["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    assert listed["metadata"]["resourceVersion"] == second["metadata"]["resourceVersion"]
    assert second["metadata"]["uid"] == first["metadata"]["uid"]


async def test_noop_patch_keeps_the_resource_version(http: aiohttp.ClientSession) -> None:
    created = await call(
        http, "POST", CMS, json={"metadata": {"name": "a"}, "data": {"k": "v"}}, status=201
    )
    patched = await call(http, "PATCH", f"{CMS}/a", json={"data": {"k": "v"}}, headers=MERGE)
    assert patched["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


async def test_put_replaces_the_object(http: aiohttp.ClientSession) -> None:
    created = await call(
        http, "POST", CMS, json={"metadata": {"name": "a"}, "data": {"x": "1"}}, status=201
    )
    body = {
        "metadata": {"name": "a", "resourceVersion": created["metadata"]["resourceVersion"]},
        "data": {"y": "2"},
    }
    replaced = await call(http, "PUT", f"{CMS}/a", json=body)
    assert replaced["data"] == {"y": "2"}
    assert replaced["metadata"]["uid"] == created["metadata"]["uid"]
    assert replaced["metadata"]["creationTimestamp"] == created["metadata"]["creationTimestamp"]


async def test_patch_flavours(http: aiohttp.ClientSession) -> None:
    await call(
        http,
        "POST",
        CMS,
        json={"metadata": {"name": "a"}, "data": {"x": "1", "y": "2"}},
        status=201,
    )
    await call(http, "PATCH", f"{CMS}/a", json={"data": {"y": None, "z": "3"}}, headers=MERGE)
    await call(
        http,
        "PATCH",
        f"{CMS}/a",
        json=[{"op": "add", "path": "/data/w", "value": "4"}],
        headers={"Content-Type": "application/json-patch+json"},
    )
    final = await call(
        http,
        "PATCH",
        f"{CMS}/a",
        json={"data": {"v": "5"}},
        headers={"Content-Type": "application/strategic-merge-patch+json"},
    )
    assert final["data"] == {"x": "1", "z": "3", "w": "4", "v": "5"}


async def test_core_discovery_reports_v1(http: aiohttp.ClientSession) -> None:
    core = await call(http, "GET", "/api/v1")
    assert core["groupVersion"] == "v1"
    assert {"configmaps", "pods", "pods/status", "namespaces", "events"} <= {
        resource["name"] for resource in core["resources"]
    }
    short_names = {r["name"]: r["shortNames"] for r in core["resources"]}
    assert short_names["pods"] == ["po"] and short_names["pods/status"] == []
    kopf = await call(http, "GET", "/apis/kopf.dev/v1")
    assert {"kopfpeerings", "clusterkopfpeerings"} <= {r["name"] for r in kopf["resources"]}


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/namespaces/default/events",
        "/apis/events.k8s.io/v1/namespaces/default/events",
    ],
)
async def test_events_are_creatable(http: aiohttp.ClientSession, url: str) -> None:
    event = {"metadata": {"generateName": "hotconf-"}, "reason": "Applied", "type": "Normal"}
    created = await call(http, "POST", url, json=event, status=201)
    assert created["metadata"]["namespace"] == "default"


async def test_pod_status_subresource(http: aiohttp.ClientSession) -> None:
    pods = "/api/v1/namespaces/default/pods"
    await call(
        http, "POST", pods, json={"metadata": {"name": "p"}, "spec": {"containers": []}}, status=201
    )
    await call(http, "PATCH", f"{pods}/p", json={"status": {"podIP": "10.0.0.9"}}, headers=MERGE)
    assert "status" not in await call(http, "GET", f"{pods}/p")  # the main resource cannot
    patched = await call(
        http,
        "PATCH",
        f"{pods}/p/status",
        json={
            "status": {"phase": "Running", "podIP": "127.0.0.1"},
            "metadata": {"labels": {"ignored": "yes"}},
        },
        headers=MERGE,
    )
    assert patched["status"] == {"phase": "Running", "podIP": "127.0.0.1"}
    assert "labels" not in patched["metadata"]


async def test_finalizers_hold_the_deletion(http: aiohttp.ClientSession) -> None:
    await call(
        http, "POST", CMS, json={"metadata": {"name": "a", "finalizers": ["x/y"]}}, status=201
    )
    marked = await call(http, "DELETE", f"{CMS}/a")
    assert marked["metadata"]["deletionTimestamp"]
    await call(http, "GET", f"{CMS}/a")
    await call(http, "PATCH", f"{CMS}/a", json={"metadata": {"finalizers": None}}, headers=MERGE)
    await call(http, "GET", f"{CMS}/a", status=404)


async def test_not_found_is_a_status(http: aiohttp.ClientSession) -> None:
    body = await call(http, "GET", f"{CMS}/missing", status=404)
    assert body["kind"] == "Status" and body["reason"] == "NotFound" and body["code"] == 404
    assert body["details"] == {"name": "missing", "kind": "configmaps", "group": ""}
    await call(http, "PATCH", f"{CMS}/missing", json={}, headers=MERGE, status=404)
    await call(http, "PUT", f"{CMS}/missing", json={"metadata": {"name": "missing"}}, status=404)
    await call(http, "DELETE", f"{CMS}/missing", status=404)
    unknown = await call(http, "GET", "/apis/example.com/v1/widgets", status=404)
    assert unknown["reason"] == "NotFound"


async def test_already_exists_is_a_status(http: aiohttp.ClientSession) -> None:
    await call(http, "POST", CMS, json={"metadata": {"name": "a"}}, status=201)
    body = await call(http, "POST", CMS, json={"metadata": {"name": "a"}}, status=409)
    assert body["reason"] == "AlreadyExists"


async def test_stale_resource_version_is_a_conflict(http: aiohttp.ClientSession) -> None:
    created = await call(http, "POST", CMS, json={"metadata": {"name": "a"}}, status=201)
    stale = created["metadata"]["resourceVersion"]
    await call(http, "PATCH", f"{CMS}/a", json={"data": {"k": "1"}}, headers=MERGE)
    put = await call(
        http,
        "PUT",
        f"{CMS}/a",
        json={"metadata": {"name": "a", "resourceVersion": stale}},
        status=409,
    )
    patch = await call(
        http,
        "PATCH",
        f"{CMS}/a",
        json={"metadata": {"resourceVersion": stale}, "data": {"k": "2"}},
        headers=MERGE,
        status=409,
    )
    assert put["reason"] == patch["reason"] == "Conflict"


@pytest.mark.parametrize(
    "body",
    [
        {"metadata": {}},
        {"metadata": {"name": "Not_Valid"}},
        {"metadata": {"name": "a", "labels": {"k": "x" * 64}}},
        {"metadata": {"name": "a"}, "data": {"k": 1}},
    ],
)
async def test_invalid_objects_are_rejected(http: aiohttp.ClientSession, body: Any) -> None:
    answer = await call(http, "POST", CMS, json=body, status=422)
    assert answer["reason"] == "Invalid"


async def test_bad_requests(http: aiohttp.ClientSession) -> None:
    mismatch = {"metadata": {"name": "a", "namespace": "other"}}
    assert (await call(http, "POST", CMS, json=mismatch, status=400))["reason"] == "BadRequest"
    selector = await call(http, "GET", CMS, params={"labelSelector": "a in (b"}, status=400)
    assert selector["reason"] == "BadRequest"
    protobuf = await call(
        http,
        "POST",
        CMS,
        data=b"\x00k8s",
        headers={"Content-Type": "application/vnd.kubernetes.protobuf"},
        status=415,
    )
    assert protobuf["reason"] == "UnsupportedMediaType"
