"""Label and field selectors filter lists (and collection deletes) over real HTTP.

Proves: ``=``, ``==``, ``!=``, ``in``, ``notin``, exists and ``!key`` for labels, several terms
together; ``metadata.name``, ``metadata.namespace``, ``status.phase`` and ``!=`` for fields;
selectors across all namespaces; deletecollection with a selector.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from kube_emulator import EmulatorServer

CMS = "/api/v1/namespaces/{ns}/configmaps"
OBJECTS = [
    ("default", "a", {"hotconf.dev/enabled": "true", "tier": "web"}),
    ("default", "b", {"hotconf.dev/enabled": "false", "tier": "db"}),
    ("default", "c", {"tier": "cache"}),
    ("other", "d", {"hotconf.dev/enabled": "true"}),
]


@pytest.fixture
async def http(kube_emulator_server: EmulatorServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(kube_emulator_server.url) as session:
        for namespace, name, labels in OBJECTS:
            body = {"metadata": {"name": name, "labels": labels}}
            async with session.post(CMS.format(ns=namespace), json=body) as response:
                assert response.status == 201
        pods = "/api/v1/namespaces/default/pods"
        for name, phase in (("p1", "Running"), ("p2", "Pending")):
            body = {"metadata": {"name": name}, "status": {"phase": phase}}
            async with session.post(pods, json=body) as response:
                assert response.status == 201
        yield session


async def names(http: aiohttp.ClientSession, url: str, **params: str) -> list[str]:
    async with http.get(url, params=params) as response:
        body: dict[str, Any] = await response.json()
        assert response.status == 200, body
    return [item["metadata"]["name"] for item in body["items"]]


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("hotconf.dev/enabled=true", ["a", "d"]),
        ("hotconf.dev/enabled==true", ["a", "d"]),
        ("hotconf.dev/enabled!=true", ["b", "c"]),
        ("tier in (web, db)", ["a", "b"]),
        ("tier notin (web,db)", ["c", "d"]),
        ("hotconf.dev/enabled", ["a", "b", "d"]),
        ("!hotconf.dev/enabled", ["c"]),
        ("hotconf.dev/enabled=true,tier", ["a"]),
        ("tier in (web,cache),!hotconf.dev/enabled", ["c"]),
    ],
)
async def test_label_selectors(
    http: aiohttp.ClientSession, selector: str, expected: list[str]
) -> None:
    assert await names(http, "/api/v1/configmaps", labelSelector=selector) == expected


@pytest.mark.parametrize(
    ("url", "selector", "expected"),
    [
        ("/api/v1/configmaps", "metadata.name=b", ["b"]),
        ("/api/v1/configmaps", "metadata.namespace=other", ["d"]),
        ("/api/v1/configmaps", "metadata.namespace!=other,metadata.name!=a", ["b", "c"]),
        ("/api/v1/pods", "status.phase=Running", ["p1"]),
        ("/api/v1/namespaces/default/pods", "status.phase!=Running", ["p2"]),
    ],
)
async def test_field_selectors(
    http: aiohttp.ClientSession, url: str, selector: str, expected: list[str]
) -> None:
    assert await names(http, url, fieldSelector=selector) == expected


async def test_namespaced_list_sees_its_namespace_only(http: aiohttp.ClientSession) -> None:
    assert await names(http, CMS.format(ns="other")) == ["d"]


async def test_delete_collection_with_selector(http: aiohttp.ClientSession) -> None:
    async with http.delete(CMS.format(ns="default"), params={"labelSelector": "tier"}) as response:
        assert response.status == 200
    assert await names(http, "/api/v1/configmaps") == ["d"]
