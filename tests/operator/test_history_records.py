"""The history record format: what a ControllerRevision of a ConfigMap holds and how it is read.

Proves: a record read back gives the same content, also when a big ConfigMap's data is stored
gzipped; a record whose data does not match its revision is never turned into a snapshot; the
name fits the API's limit for any ConfigMap name; who changed the data comes from the newest
managedFields entry that owns ``data`` or ``binaryData``; the limit annotation is checked; pruning
keeps the current and the last good revision whatever the limit.
"""

from __future__ import annotations

import json

from hotconf_operator._history import (
    COMPRESS_ABOVE,
    HistoryEntry,
    changed_by,
    entry_of,
    history_limit,
    last_good,
    record_body,
    record_name,
    to_prune,
)
from hotconf_operator._status import Phase, RolloutStatus
from hotconf_wire.protocol import ConfigSnapshot, compute_revision


def snapshot(data: dict[str, str], binary: dict[str, bytes] | None = None) -> ConfigSnapshot:
    binary = binary or {}
    return ConfigSnapshot(namespace="ns", name="app", revision=compute_revision(data, binary),
                          data=data, binary_data=binary)  # fmt: skip


def test_a_record_reads_back_as_the_same_content_small_or_gzipped() -> None:
    for data in ({"a": "one"}, {"big": '"\n' * COMPRESS_ABOVE}):
        snap = snapshot(data, {"b.bin": bytes(range(256))})
        body = record_body(snapshot=snap, uid="u1", number=3, who=("argocd", "t"), outcome=None)
        stored = json.loads(json.dumps(body))
        assert ("gzip" in stored["data"]) == ("big" in data)
        assert len(json.dumps(stored)) < 1024 * 1024 + 4096  # fits the API's request limits
        entry = entry_of(stored)
        assert entry is not None and entry.number == 3 and entry.changed_by == "argocd"
        assert entry.snapshot("ns", "app") == snap


def test_a_record_changed_by_hand_is_not_used() -> None:
    """The data must match the content revision it claims, or it is never pushed."""
    body = record_body(snapshot=snapshot({"a": "one"}), uid="u", number=1, who=("", ""),
                       outcome=None)  # fmt: skip
    body["data"]["data"]["a"] = "tampered"
    entry = entry_of(body)
    assert entry is not None and entry.snapshot("ns", "app") is None


def test_the_name_is_a_valid_object_name_for_any_configmap() -> None:
    name = record_name("x" * 253, "sha256:" + "ab" * 32)
    assert len(name) <= 253 and name.endswith("-hotconf-abababababab")


def test_who_changed_the_data_is_the_newest_manager_of_data() -> None:
    fields = [
        {"manager": "argocd-controller", "time": "2026-01-02T00:00:00Z",
         "fieldsV1": {"f:binaryData": {}}},
        {"manager": "hotconf-operator", "time": "2026-01-03T00:00:00Z",
         "fieldsV1": {"f:metadata": {}}},
        {"manager": "kubectl-client-side-apply", "time": "2026-01-01T00:00:00Z",
         "fieldsV1": {"f:data": {}}},
    ]  # fmt: skip
    assert changed_by(fields) == ("argocd-controller", "2026-01-02T00:00:00Z")
    assert changed_by(None) == ("", "")


def test_the_limit_annotation_is_a_positive_count_or_the_default_with_a_warning() -> None:
    assert history_limit({}, 10) == (10, "")
    assert history_limit({"hotconf.dev/history-limit": "3"}, 10) == (3, "")
    for bad in ("0", "-1", "many"):
        limit, problem = history_limit({"hotconf.dev/history-limit": bad}, 10)
        assert limit == 10 and "hotconf.dev/history-limit" in problem


def entry(number: int, phase: Phase) -> HistoryEntry:
    return HistoryEntry(name=f"r{number}", number=number, revision=f"sha256:{number}",
                        created="", changed_by="", changed_at="",
                        outcome=RolloutStatus(revision=f"sha256:{number}", phase=phase),
                        content=None)  # fmt: skip


def test_pruning_keeps_the_current_and_the_last_good_revision() -> None:
    entries = [entry(1, Phase.COMPLETE), entry(2, Phase.REJECTED), entry(3, Phase.REJECTED),
               entry(4, Phase.HALTED)]  # fmt: skip
    assert last_good(entries, besides="sha256:4") == entries[0]
    assert [e.number for e in to_prune(entries, 1, current="sha256:4")] == [2, 3]
    assert [e.number for e in to_prune(entries, 3, current="sha256:4")] == [2]
    assert to_prune(entries, 10, current="sha256:4") == []
