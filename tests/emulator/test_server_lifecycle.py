"""EmulatorServer moves through new -> running -> stopped, and misuse says what rule it broke."""

from __future__ import annotations

import pytest
from kube_emulator import EmulatorServer, ServerState, ServerStateError


def state_of(server: EmulatorServer) -> ServerState:
    return server.state


async def test_lifecycle_and_misuse() -> None:
    server = EmulatorServer()
    assert state_of(server) is ServerState.NEW
    with pytest.raises(ServerStateError, match="not running"):
        _ = server.url
    async with server:
        assert state_of(server) is ServerState.RUNNING
        assert server.url == f"http://127.0.0.1:{server.port}"
        with pytest.raises(ServerStateError, match="starts once"):
            await server.start()
    assert state_of(server) is ServerState.STOPPED
    await server.stop()  # idempotent
    with pytest.raises(ServerStateError, match="starts once"):
        await server.start()
