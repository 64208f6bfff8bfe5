"""Key rotation at the sidecar, on the real process: a verified push that announces a trust set
replaces the trusted keys, which survive ``kill -9`` and win over the injected key; an older push
cannot bring a removed key back; a set without the signing key, an empty or malformed set is
refused with nothing changed; once trust has moved to the new key, the old key is refused."""

from __future__ import annotations

import time
from pathlib import Path

from sidecar_harness import SidecarProcess, Signer

from hotconf_wire.envelope import decode_payload


def ids(*signers: Signer) -> list[str]:
    return sorted(s.key_id for s in signers)


def trusted(sidecar: SidecarProcess) -> list[str]:
    return sorted(sidecar.get("/v2/state").body["trusted"])


def test_announced_trust_is_adopted_persisted_and_wins_over_the_injected_key(
    sidecar: SidecarProcess, signer: Signer
) -> None:
    old, new = signer, Signer()
    assert trusted(sidecar) == ids(old)
    both = (old.raw_public, new.raw_public)
    announce = old.body({"k": "1"}, sequence=time.time_ns(), trust=both, with_key_id=True)
    assert sidecar.push(announce).body["status"] == "applied"
    assert trusted(sidecar) == ids(old, new)
    by_new = new.body({"k": "2"}, sequence=time.time_ns(), trust=both, with_key_id=True)
    assert sidecar.push(by_new).body["status"] == "applied"

    sidecar.kill()  # SIGKILL; the restart gets only the old key injected, as the pod was admitted
    sidecar.start()
    assert trusted(sidecar) == ids(old, new)
    again = new.body({"k": "3"}, sequence=time.time_ns(), trust=both, with_key_id=True)
    assert sidecar.push(again).body["status"] == "applied"
    assert sidecar.stop() == 0


def test_after_trust_moves_to_the_new_key_the_old_key_is_refused(
    sidecar: SidecarProcess, signer: Signer
) -> None:
    old, new = signer, Signer()
    both, only_new = (old.raw_public, new.raw_public), (new.raw_public,)
    first = old.body({"k": "1"}, sequence=time.time_ns(), trust=both, with_key_id=True)
    assert sidecar.push(first).status == 200
    # Built now, delivered late: a push of another ConfigMap that still announces both keys.
    late = new.body({"k": "x"}, name="other", sequence=time.time_ns(), trust=both)
    moved = new.body({"k": "2"}, sequence=time.time_ns(), trust=only_new, with_key_id=True)
    assert sidecar.push(moved).body["status"] == "applied"
    assert trusted(sidecar) == ids(new)

    # The older push's config is new to the pod, but its announcement is older than the held one.
    assert sidecar.push(late).status == 200
    assert trusted(sidecar) == ids(new)
    refused = sidecar.push(first)  # replayed with the old trust: the old key is gone
    assert (refused.status, refused.reason) == (401, "bad_signature")
    fresh_by_old = old.body({"k": "3"}, sequence=time.time_ns(), trust=both, with_key_id=True)
    refused = sidecar.push(fresh_by_old)
    assert (refused.status, refused.reason) == (401, "bad_signature")
    assert old.key_id in refused.body["error"]["message"]
    stale = new.body({"k": "1"}, sequence=time.time_ns() - 10**9, trust=both)
    assert sidecar.push(stale).reason == "stale"
    assert trusted(sidecar) == ids(new)

    sidecar.kill()
    sidecar.start()
    assert trusted(sidecar) == ids(new)
    refused = sidecar.push(old.body({"k": "4"}, sequence=time.time_ns()))
    assert (refused.status, refused.reason) == (401, "bad_signature")
    [held] = [c for c in sidecar.get("/v2/state").body["configmaps"] if c["name"] == "app"]
    assert held["revision"] == decode_payload(moved.body).snapshot.revision
    assert sidecar.stop() == 0


def test_a_set_without_the_signing_key_or_malformed_is_refused_and_nothing_changes(
    sidecar: SidecarProcess, signer: Signer
) -> None:
    good = signer.body({"k": "good"}, sequence=time.time_ns())
    applied = sidecar.push(good).body
    stranger = Signer()
    without_signer = signer.body(
        {"k": "bad"}, sequence=time.time_ns(), trust=(stranger.raw_public,), with_key_id=True
    )
    refused = sidecar.push(without_signer)
    assert (refused.status, refused.reason) == (400, "malformed")
    assert "must hold the key that signs" in refused.body["error"]["message"]

    template = signer.body({"k": "bad"}, sequence=time.time_ns(), trust=(signer.raw_public,))
    for bad, says in [(b"[]", "non-empty list"), (b'["AAAA"]', "32"), (b'"x"', "non-empty list")]:
        payload = template.body.replace(
            template.body[template.body.index(b'"trust":') : template.body.index(b"}\n")],
            b'"trust":' + bad,
        )
        refused = sidecar.push(signer.sign(payload))
        assert (refused.status, refused.reason) == (400, "malformed"), refused.body
        assert says in refused.body["error"]["message"]

    state = sidecar.get("/v2/state").body
    assert sorted(state["trusted"]) == ids(signer)
    [held] = state["configmaps"]
    assert (held["revision"], held["sequence"]) == (applied["revision"], applied["sequence"])
    assert not (sidecar.state_dir / "trust.json").exists()


def test_several_injected_keys_are_all_trusted(tmp_path: Path, signer: Signer) -> None:
    """A pod admitted during a rotation gets every announced key in HOTCONF_OPERATOR_PUBLIC_KEY."""
    new = Signer()
    env = {"HOTCONF_OPERATOR_PUBLIC_KEY": signer.public_pem + new.public_pem}
    sidecar = SidecarProcess(tmp_path, signer, env=env).start()
    try:
        assert trusted(sidecar) == ids(signer, new)
        assert sidecar.push(new.body({"k": "1"}, sequence=time.time_ns())).status == 200
        assert sidecar.stop() == 0
    finally:
        if sidecar.proc is not None and sidecar.proc.poll() is None:
            sidecar.kill()
