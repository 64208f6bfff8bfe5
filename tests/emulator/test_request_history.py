"""The emulator forgets answered requests, so that it does not slow down with time.

kmock keeps every request and scans them all to route the next one. Proves: after 3,000
requests (writes, reads, errors) kmock holds none of them, an open watch is held only while
it is open, and ``history`` keeps only the last N for debugging.
"""

from __future__ import annotations

import asyncio

import aiohttp
from kube_emulator import EmulatorServer, KubeEmulator

CMS = "/api/v1/namespaces/default/configmaps"
MERGE = {"Content-Type": "application/merge-patch+json"}


async def test_answered_requests_are_forgotten() -> None:
    emulator = KubeEmulator(history=10)
    async with (
        EmulatorServer(emulator=emulator) as server,
        aiohttp.ClientSession(server.url) as http,
    ):
        async with http.post(CMS, json={"metadata": {"name": "a"}}) as response:
            assert response.status == 201
        for index in range(1000):
            async with http.patch(f"{CMS}/a", json={"data": {"i": str(index)}}, headers=MERGE) as r:
                assert r.status == 200
            async with http.get(f"{CMS}/a") as r:
                assert r.status == 200
            async with http.get(f"{CMS}/missing") as r:
                assert r.status == 404
        assert emulator.held_requests == 0
        assert len(emulator.recent_requests) == 10
        assert emulator.recent_requests[-1].name == "missing"
        assert not emulator.unexpected_errors


async def test_open_watch_is_held_until_it_ends() -> None:
    emulator = KubeEmulator()
    async with (
        EmulatorServer(emulator=emulator) as server,
        aiohttp.ClientSession(server.url) as http,
    ):
        async with http.get(CMS, params={"watch": "true", "timeoutSeconds": "1"}) as response:
            await asyncio.sleep(0.1)
            assert emulator.held_requests >= 1
            await response.read()
        for _ in range(50):  # the server finishes the handler just after the last byte
            if emulator.held_requests == 0:
                break
            await asyncio.sleep(0.02)
        assert emulator.held_requests == 0
