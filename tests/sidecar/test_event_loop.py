"""The event loop setting: by default the sidecar runs on uvloop (installed with the ``sidecar``
extra), and with ``--event-loop asyncio`` on the standard library's loop; on either it verifies,
relays and answers a push, names its loop in the start-up log and stops cleanly on SIGTERM; a
value it does not know exits 2 naming the setting."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path

import pytest
from sidecar_harness import POD, SCRIPT, RawClient, SidecarProcess, Signer


@pytest.mark.parametrize(("setting", "loop"), [(None, "uvloop"), ("asyncio", "asyncio")])
def test_push_on_each_loop(tmp_path: Path, signer: Signer, setting: str | None, loop: str) -> None:
    env = {"HOTCONF_EVENT_LOOP": setting} if setting else {}
    sidecar = SidecarProcess(tmp_path, signer, env=env).start()
    try:
        client = RawClient(sidecar.socket, name="looped")
        acker = threading.Thread(target=lambda: client.ack(client.next_config()))
        acker.start()
        reply = sidecar.push(signer.body({"k": "v"}))
        acker.join(10)
        assert reply.status == 200
        assert [c["result"] for c in reply.body["clients"]] == ["ack"]
        client.close()
        assert sidecar.stop() == 0
    finally:
        if sidecar.proc is not None and sidecar.proc.poll() is None:
            sidecar.kill()
    messages = [json.loads(line)["msg"] for line in sidecar.logs().splitlines()]
    assert any(m.startswith("serving pod") and m.endswith(f", {loop} event loop") for m in messages)


def test_unknown_event_loop_exits_2() -> None:
    env = os.environ | {
        "HOTCONF_POD_NAMESPACE": POD.namespace,
        "HOTCONF_POD_NAME": POD.name,
        "HOTCONF_POD_UID": POD.uid,
    }
    done = subprocess.run(
        [str(SCRIPT), "--public-key", "nope", "--event-loop", "trio"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (done.returncode, "--event-loop 'trio'" in done.stderr) == (2, True)
