"""Accepted configs survive a ``kill -9`` of the sidecar (with and without ``--fsync``): after a
restart the last one is served again to clients and in /v2/state, and no older or equal sequence
is accepted after a newer one.
The state directory holds one append-only log per ConfigMap; a record cut short (a save killed
half-way) is never served, a file that holds nothing whole (an envelope v1 file of an older
sidecar) is set aside, not fatal, and an older sidecar's single file per ConfigMap is read."""

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


def test_each_save_appends_to_one_log_per_configmap_and_a_corrupt_file_is_set_aside(
    tmp_path: Path, signer: Signer
) -> None:
    """Pushes of one ConfigMap go to one log named for its first sequence; a file holding
    nothing whole is set aside as ``.corrupt`` and the others are still served."""
    sidecar = SidecarProcess(tmp_path, signer).start()
    state_dir = sidecar.state_dir / "configmaps"
    try:
        first = sidecar.push(signer.body({"k": "u"})).body
        app = sidecar.push(signer.body({"k": "v"})).body  # appended to the first one's log
        broken = sidecar.push(signer.body({"k": "w"}, name="broken")).body
        assert sidecar.stop() == 0
        files = sorted(p.name for p in state_dir.iterdir())
        assert files == [
            f"shop_app.{first['sequence']}.log",
            f"shop_broken.{broken['sequence']}.log",
        ]
        assert (state_dir / files[0]).read_bytes().count(b"\n") == 4  # two records, two lines
        # A newer log created and killed before its first record was whole; a damaged log.
        (state_dir / f"shop_app.{app['sequence'] + 1}.log").write_text('{"v": 2, "pod"')
        (state_dir / f"shop_broken.{broken['sequence']}.log").write_text('{"v": 1, "pod"')
        sidecar.start()
        state = sidecar.get("/v2/state").body
        assert [(c["name"], c["sequence"]) for c in state["configmaps"]] == [
            ("app", app["sequence"])
        ]
        files = sorted(p.name for p in state_dir.iterdir())
        assert files == sorted(
            [
                f"shop_app.{app['sequence'] + 1}.corrupt",
                f"shop_app.{first['sequence']}.log",
                f"shop_broken.{broken['sequence']}.corrupt",
            ]
        )
        assert "unreadable" in sidecar.logs()
        assert sidecar.stop() == 0
    finally:
        if sidecar.proc is not None and sidecar.proc.poll() is None:
            sidecar.kill()


def test_a_record_cut_short_is_not_served_and_the_log_is_set_aside_once_replaced(
    tmp_path: Path, signer: Signer
) -> None:
    """A save killed half-way through its append (part of a record at the log's end) was never
    answered: the record before it is served, the next push is accepted into a new log, and the
    cut log is kept as ``.corrupt``, not deleted."""
    sidecar = SidecarProcess(tmp_path, signer).start()
    state_dir = sidecar.state_dir / "configmaps"
    try:
        first = sidecar.push(signer.body({"k": "u"})).body
        app = sidecar.push(signer.body({"k": "v"})).body
        sidecar.kill()
        log = state_dir / f"shop_app.{first['sequence']}.log"
        cut = signer.body({"k": "never answered"}).body
        with log.open("ab") as f:
            f.write(cut[: len(cut) - 5])  # both lines but the end of the second
        sidecar.start()
        [held] = sidecar.get("/v2/state").body["configmaps"]
        assert (held["revision"], held["sequence"]) == (app["revision"], app["sequence"])
        client = RawClient(sidecar.socket)
        assert client.next_config().data == {"k": "v"}
        client.close()
        assert "cut short" in sidecar.logs()

        after = sidecar.push(signer.body({"k": "w"})).body
        assert after["status"] == "applied"
        files = sorted(p.name for p in state_dir.iterdir())
        assert files == sorted(
            [f"shop_app.{after['sequence']}.log", f"shop_app.{first['sequence']}.corrupt"]
        )
        sidecar.kill()
        sidecar.start()
        [held] = sidecar.get("/v2/state").body["configmaps"]
        assert (held["revision"], held["sequence"]) == (after["revision"], after["sequence"])
        assert sidecar.stop() == 0
    finally:
        if sidecar.proc is not None and sidecar.proc.poll() is None:
            sidecar.kill()


def test_a_log_past_its_size_is_replaced_by_a_new_one_holding_the_newest(
    tmp_path: Path, signer: Signer
) -> None:
    """Large configs: the save that would take the log past ``ROLL_BYTES`` writes a new log and
    only then removes the old one; a ``kill -9`` after it loses nothing."""
    from hotconf_sidecar._store import ROLL_BYTES

    sidecar = SidecarProcess(tmp_path, signer).start()
    state_dir = sidecar.state_dir / "configmaps"
    big = ROLL_BYTES // 3
    try:
        answers = [sidecar.push(signer.body({"k": str(n) * big})).body for n in range(4)]
        assert [a["status"] for a in answers] == ["applied"] * 4
        # Records 0 and 1 fit in the first log; 2 starts a new one, 3 is appended to it.
        assert sorted(p.name for p in state_dir.iterdir()) == [
            f"shop_app.{answers[2]['sequence']}.log"
        ]
        sidecar.kill()
        sidecar.start()
        [held] = sidecar.get("/v2/state").body["configmaps"]
        assert held["sequence"] == answers[3]["sequence"]
        client = RawClient(sidecar.socket)
        assert client.next_config().data == {"k": "3" * big}
        client.close()
        assert sidecar.stop() == 0
    finally:
        if sidecar.proc is not None and sidecar.proc.poll() is None:
            sidecar.kill()


def test_state_file_of_an_older_sidecar_is_served_and_moved_to_a_log(
    tmp_path: Path, signer: Signer
) -> None:
    """Sidecars before the log wrote ``<ns>_<name>.<sequence>.json``, one payload each: after an
    upgrade its config is served, older sequences are refused, and the next save moves it to a
    log."""
    sidecar = SidecarProcess(tmp_path, signer)
    state_dir = sidecar.state_dir / "configmaps"
    state_dir.mkdir(parents=True)
    kept = signer.body({"k": "kept"})
    sequence = signer.sequence
    (state_dir / f"shop_app.{sequence}.json").write_bytes(kept.body)
    try:
        sidecar.start()
        [held] = sidecar.get("/v2/state").body["configmaps"]
        assert held["sequence"] == sequence
        client = RawClient(sidecar.socket)
        assert client.next_config().data == {"k": "kept"}
        client.close()
        assert sidecar.push(kept).reason == "replayed"
        after = sidecar.push(signer.body({"k": "new"})).body
        assert sorted(p.name for p in state_dir.iterdir()) == [f"shop_app.{after['sequence']}.log"]
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
