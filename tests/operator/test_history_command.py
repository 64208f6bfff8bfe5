"""``hotconf rollback`` picks what to put back and says what it would change, by the rules.

Proves: without ``--to`` it picks the newest revision every pod applied other than the content
now (never the current one, never a halted or rejected one); ``--to`` an unknown number, an empty
history or no good revision are refused, naming the ConfigMap and what to do; the key diff names
added, changed and removed keys; both commands are reachable from the ``hotconf`` CLI and from
``kubectl-hotconf``, and a missing CONFIGMAP is a usage error (exit 2).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hotconf_operator._errors import RollbackRefused
from hotconf_operator._history import HistoryEntry
from hotconf_operator._history_command import Found, key_changes, pick
from hotconf_operator._status import Phase, RolloutStatus
from hotconf_wire.protocol import compute_revision

BIN = Path(sys.executable).parent
NOW = {"value": "three"}


def entry(number: int, value: str, phase: Phase) -> HistoryEntry:
    revision = compute_revision({"value": value})
    return HistoryEntry(name=f"app-hotconf-{number}", number=number, revision=revision,
                        created="", changed_by="", changed_at="",
                        outcome=RolloutStatus(revision=revision, phase=phase),
                        content=({"value": value}, {}))  # fmt: skip


def found(*entries: HistoryEntry) -> Found:
    configmap = {"metadata": {"name": "app", "namespace": "ns"}, "data": NOW}
    return Found(configmap=configmap, entries=sorted(entries, key=lambda e: -e.number))


def test_the_default_is_the_newest_good_revision_other_than_the_content_now() -> None:
    history = found(entry(1, "one", Phase.COMPLETE), entry(2, "two", Phase.COMPLETE),
                    entry(3, "bad", Phase.HALTED), entry(4, "three", Phase.COMPLETE))  # fmt: skip
    assert pick(history, None).number == 2
    assert pick(history, 1).number == 1


def test_what_cannot_be_picked_is_refused_with_what_to_do() -> None:
    with pytest.raises(RollbackRefused, match=r"has no revision 9; its history has 2, 1"):
        pick(found(entry(1, "one", Phase.COMPLETE), entry(2, "two", Phase.HALTED)), 9)
    with pytest.raises(RollbackRefused, match="no earlier revision that every pod applied"):
        pick(found(entry(1, "one", Phase.REJECTED), entry(2, "three", Phase.COMPLETE)), None)
    with pytest.raises(RollbackRefused, match="'app' has no history"):
        pick(found(), None)


def test_the_key_diff_names_added_changed_and_removed_keys() -> None:
    old = {"a": "1", "b": "2", "c": "3"}
    assert key_changes(old, {"a": "1", "b": "20", "d": "4"}) == (["d"], ["b"], ["c"])


@pytest.mark.parametrize("command", [["hotconf"], ["kubectl-hotconf"]])
@pytest.mark.parametrize("word", ["history", "rollback"])
def test_both_commands_are_there_and_a_missing_configmap_is_a_usage_error(
    command: list[str], word: str
) -> None:
    helped = subprocess.run([str(BIN / command[0]), word, "--help"], capture_output=True,
                            text=True, timeout=60, check=False)  # fmt: skip
    assert helped.returncode == 0 and "CONFIGMAP" in helped.stdout, helped.stderr
    bare = subprocess.run([str(BIN / command[0]), word], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert bare.returncode == 2 and "CONFIGMAP" in bare.stderr
