"""Accepted configs survive a ``kill -9`` of the sidecar (with and without ``--fsync``): after a
restart the last one is served again to clients and in /v2/state, and no older or equal sequence
is accepted after a newer one.
The state directory holds one whole file per ConfigMap; a newer file cut short (a save killed
half-way) or any unreadable one (an envelope v1 file of an older sidecar) is set aside,
not fatal."""

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
        [held] = sidecar.get("/v2/state").body["configmaps"]
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
        from hotconf_wire.protocol import ConfigMapRef

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
    state_dir = sidecar.state_dir / "configmaps"
    try:
        sidecar.push(signer.body({"k": "u"}))
        app = sidecar.push(signer.body({"k": "v"})).body  # replaces the first file
        broken = sidecar.push(signer.body({"k": "w"}, name="broken")).body
        assert sidecar.stop() == 0
        files = sorted(p.name for p in state_dir.iterdir())
        assert files == [
            f"shop_app.{app['sequence']}.json",
            f"shop_broken.{broken['sequence']}.json",
        ]
        # A save cut short by kill -9: a newer file that does not parse, never answered.
        (state_dir / f"shop_app.{app['sequence'] + 1}.json").write_text('{"v": 1, "pod"')
        (state_dir / f"shop_broken.{broken['sequence']}.json").write_text('{"v": 1, "pod"')
        sidecar.start()
        state = sidecar.get("/v2/state").body
        assert [(c["name"], c["sequence"]) for c in state["configmaps"]] == [
            ("app", app["sequence"])
        ]
        files = sorted(p.name for p in state_dir.iterdir())
        assert files == sorted(
            [
                f"shop_app.{app['sequence'] + 1}.corrupt",
                f"shop_app.{app['sequence']}.json",
                f"shop_broken.{broken['sequence']}.corrupt",
            ]
        )
        assert "unreadable" in sidecar.logs()
        assert sidecar.stop() == 0
    finally:
        if sidecar.proc is not None and sidecar.proc.poll() is None:
            sidecar.kill()


def test_state_file_of_envelope_v1_is_set_aside_not_served(tmp_path: Path, signer: Signer) -> None:
    """A state directory kept from an older sidecar (envelope v1, one JSON object)."""
    sidecar = SidecarProcess(tmp_path, signer)
    state_dir = sidecar.state_dir / "configmaps"
    state_dir.mkdir(parents=True)
    old = state_dir / "shop_app.17.json"
    old.write_text(
        '{"v":1,"pod":{"namespace":"shop","name":"web-0","uid":"u"},"sequence":17,'
        '"expires":1,"configmap":{"namespace":"shop","name":"app"},"revision":"sha256:0",'
        '"data":{"k":"v"},"binaryData":{}}'
    )
    try:
        sidecar.start()
        assert sidecar.get("/v2/state").body["configmaps"] == []
        assert [p.name for p in state_dir.iterdir()] == ["shop_app.17.corrupt"]
        assert "envelope v1" in sidecar.logs()
        assert sidecar.push(signer.body({"k": "w"})).status == 200
        assert sidecar.stop() == 0
    finally:
        if sidecar.proc is not None and sidecar.proc.poll() is None:
            sidecar.kill()
