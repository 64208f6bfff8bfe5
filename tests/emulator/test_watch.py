"""Watches behave as on a real API server, over real HTTP.

Proves: a watch without resourceVersion starts with the existing objects; one from a
resourceVersion replays only the later changes; timeoutSeconds ends the stream; ``watch=True``
(capital, as the official client sends it) is a watch; selectors apply to watches, with an
object that leaves the selection seen as DELETED; a resourceVersion older than the event log
gets a 410 ERROR event; stopping the server ends open watches.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from kube_emulator import EmulatorServer, KubeEmulator, Store

CMS = "/api/v1/namespaces/default/configmaps"
MERGE = {"Content-Type": "application/merge-patch+json"}


@pytest.fixture
async def http(kube_emulator_server: EmulatorServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(kube_emulator_server.url) as session:
        yield session


async def create(http: aiohttp.ClientSession, name: str, **labels: str) -> dict[str, Any]:
    body = {"metadata": {"name": name, "labels": labels}}
    async with http.post(CMS, json=body) as response:
        assert response.status == 201
        result: dict[str, Any] = await response.json()
        return result


async def patch(http: aiohttp.ClientSession, name: str, body: Any) -> None:
    async with http.patch(f"{CMS}/{name}", json=body, headers=MERGE) as response:
        assert response.status == 200


async def read_events(
    http: aiohttp.ClientSession, params: dict[str, str], count: int
) -> list[tuple[str, str]]:
    """Read ``count`` events (type, name) from a watch, then close it."""
    events: list[tuple[str, str]] = []
    async with http.get(CMS, params=params) as response:
        assert response.status == 200
        async with asyncio.timeout(10):
            while len(events) < count:
                event = json.loads(await response.content.readline())
                events.append((event["type"], event["object"]["metadata"]["name"]))
    return events


async def test_watch_without_resource_version_starts_with_existing_objects(
    http: aiohttp.ClientSession,
) -> None:
    await create(http, "a")
    await create(http, "b")
    assert await read_events(http, {"watch": "true"}, 2) == [("ADDED", "a"), ("ADDED", "b")]


async def test_watch_from_resource_version_replays_later_changes_only(
    http: aiohttp.ClientSession,
) -> None:
    await create(http, "old")
    async with http.get(CMS) as response:
        since = (await response.json())["metadata"]["resourceVersion"]
    await create(http, "new")
    await patch(http, "old", {"data": {"k": "v"}})
    async with http.delete(f"{CMS}/new"):
        pass
    events = await read_events(http, {"watch": "true", "resourceVersion": since}, 3)
    assert events == [("ADDED", "new"), ("MODIFIED", "old"), ("DELETED", "new")]


async def test_watch_streams_live_changes(http: aiohttp.ClientSession) -> None:
    async with http.get(CMS) as response:
        since = (await response.json())["metadata"]["resourceVersion"]
    reader = asyncio.create_task(read_events(http, {"watch": "true", "resourceVersion": since}, 2))
    await asyncio.sleep(0.1)
    await create(http, "live")
    await patch(http, "live", {"data": {"k": "v"}})
    assert await reader == [("ADDED", "live"), ("MODIFIED", "live")]


async def test_timeout_seconds_ends_the_watch(http: aiohttp.ClientSession) -> None:
    await create(http, "a")
    async with http.get(CMS, params={"watch": "true", "timeoutSeconds": "1"}) as response:
        async with asyncio.timeout(10):
            body = await response.read()  # returns only when the server ends the stream
    assert [json.loads(line)["type"] for line in body.splitlines()] == ["ADDED"]


async def test_capitalised_watch_true_is_a_watch(http: aiohttp.ClientSession) -> None:
    await create(http, "a")
    async with http.get(CMS, params={"watch": "True", "timeoutSeconds": "1"}) as response:
        line = json.loads((await response.read()).splitlines()[0])
    assert line["type"] == "ADDED"  # an event, not a list


async def test_named_watch(http: aiohttp.ClientSession) -> None:
    await create(http, "a")
    await create(http, "b")
    async with http.get(f"{CMS}/b", params={"watch": "true", "timeoutSeconds": "1"}) as response:
        body = await response.read()
    names = [json.loads(line)["object"]["metadata"]["name"] for line in body.splitlines()]
    assert names == ["b"]


async def test_selectors_apply_to_watches(http: aiohttp.ClientSession) -> None:
    async with http.get(CMS) as response:
        since = (await response.json())["metadata"]["resourceVersion"]
    await create(http, "in", team="a")
    await create(http, "out", team="b")
    await patch(http, "in", {"metadata": {"labels": {"team": "c"}}})  # leaves the selection
    await patch(http, "out", {"metadata": {"labels": {"team": "a"}}})  # enters it
    params = {"watch": "true", "resourceVersion": since, "labelSelector": "team=a"}
    events = await read_events(http, params, 3)
    assert events == [("ADDED", "in"), ("DELETED", "in"), ("ADDED", "out")]


async def test_too_old_resource_version_is_gone() -> None:
    emulator = KubeEmulator(store=Store(log_size=5))
    async with (
        EmulatorServer(emulator=emulator) as server,
        aiohttp.ClientSession(server.url) as http,
    ):
        for index in range(10):
            await create(http, f"cm{index}")
        async with http.get(CMS, params={"watch": "true", "resourceVersion": "1"}) as response:
            event = json.loads(await response.read())
    assert event["type"] == "ERROR"
    assert event["object"]["code"] == 410 and event["object"]["reason"] == "Expired"


async def test_stopping_the_server_ends_open_watches() -> None:
    server = EmulatorServer()
    await server.start()
    try:
        async with aiohttp.ClientSession(server.url) as http:
            async with http.get(CMS, params={"watch": "true"}) as response:
                await server.stop()
                async with asyncio.timeout(10):
                    assert await response.read() == b""
    finally:
        await server.stop()
