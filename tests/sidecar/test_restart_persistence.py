"""Accepted configs survive a ``kill -9`` of the sidecar (with and without ``--fsync``): after a
restart the last one is served again to clients and in /v1/state, and no older or equal sequence
is accepted after a newer one.
The state directory holds whole files only, and an unreadable one is set aside, not fatal."""

from __future__ import annotations

from pathlib import Path

import pytest
from sidecar_harness import RawClient, SidecarProcess, Signer


@pytest.mark.parametrize("fsync", ["false", "true"])
def test_kill_9_between_pushes_loses_nothing(tmp_path: Path, signer: Signer, fsync: str) -> None:
    sidecar = SidecarProcess(tmp_path, signer, "--fsync", fsync).start()
    try:
        first = signer.body({"app.yaml": "level: 1\n"})
        second = signer.body({"app.yaml": "level: 2\n"}, binary={"logo.png": b"\x89PNG\x00"})
        assert sidecar.push(first).body["status"] == "applied"
        applied = sidecar.push(second).body
        sidecar.kill()  # SIGKILL right after the answer: no chance to flush anything
        assert sidecar.socket.is_socket()  # left behind; the restart must replace it safely

        sidecar.start()
        [held] = sidecar.get("/v1/state").body["configmaps"]
        assert (held["revision"], held["sequence"]) == (applied["revision"], applied["sequence"])

        client = RawClient(sidecar.socket)
        got = client.next_config()
        assert got.revision == applied["revision"]
        assert got.data == {"app.yaml": "level: 2\n"}
        assert got.binary_data == {"logo.png": b"\x89PNG\x00"}
        client.close()

        assert sidecar.push(first).reason == "stale"
        assert sidecar.push(second).reason == "replayed"
        assert sidecar.stop() == 0
    finally:
        if sidecar.proc is not None and sidecar.proc.poll() is None:
            sidecar.kill()


def test_unsubscribed_configmap_is_persisted_and_served_later(
    tmp_path: Path, signer: Signer
) -> None:
    sidecar = SidecarProcess(tmp_path, signer).start()
    try:
        answer = sidecar.push(signer.body({"k": "v"}, name="nobody-wants-me"))
        assert (answer.status, answer.body["status"], answer.body["clients"]) == (
            200,
            "applied",
            [],
        )
        sidecar.kill()
        sidecar.start()
        from hotconf.protocol import ConfigMapRef

        client = RawClient(sidecar.socket, ConfigMapRef("shop", "nobody-wants-me"))
        assert client.next_config().data == {"k": "v"}
        client.close()
        assert sidecar.stop() == 0
    finally:
        if sidecar.proc is not None and sidecar.proc.poll() is None:
            sidecar.kill()


def test_state_files_are_whole_and_a_corrupt_one_is_set_aside(
    tmp_path: Path, signer: Signer
) -> None:
    sidecar = SidecarProcess(tmp_path, signer).start()
    try:
        sidecar.push(signer.body({"k": "v"}))
        sidecar.push(signer.body({"k": "w"}, name="broken"))
        assert sidecar.stop() == 0
        files = sorted(p.name for p in (sidecar.state_dir / "configmaps").iterdir())
        assert files == ["shop_app.json", "shop_broken.json"]
        (sidecar.state_dir / "configmaps" / "shop_broken.json").write_text('{"v": 1, "pod"')
        (sidecar.state_dir / "configmaps" / ".tmp-shop_app.json").write_text("half")
        sidecar.start()
        state = sidecar.get("/v1/state").body
        assert [c["name"] for c in state["configmaps"]] == ["app"]
        files = sorted(p.name for p in (sidecar.state_dir / "configmaps").iterdir())
        assert files == ["shop_app.json", "shop_broken.corrupt"]
        assert "unreadable" in sidecar.logs()
        assert sidecar.stop() == 0
    finally:
        if sidecar.proc is not None and sidecar.proc.poll() is None:
            sidecar.kill()
