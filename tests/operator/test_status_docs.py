"""docs/operator.md's status command section says what the command does.

Proves: every option of ``hotconf status`` (its argparse parser) is in the options table, every
``-o`` format in the formats table, and the exit status table lists exactly the statuses the
code returns (errors, usage, and each ``--wait`` outcome).
"""

from __future__ import annotations

import re
from pathlib import Path

from hotconf_operator import _status_command
from hotconf_operator._status_output import FORMATS
from hotconf_operator._status_wait import WaitOutcome

SECTION = (Path(__file__).resolve().parents[2] / "docs" / "operator.md").read_text()
SECTION = SECTION[SECTION.index("## Status from the command line") :]
SECTION = SECTION.split("\n## ", 1)[0]


def test_every_option_is_documented() -> None:
    parser = _status_command._parser("hotconf status")
    options = {o for action in parser._actions for o in action.option_strings} - {"-h", "--help"}
    missing = {o for o in options if not re.search(rf"`{re.escape(o)}[` ]", SECTION)}
    assert not missing


def test_every_format_is_documented() -> None:
    assert {f for f in FORMATS if f"| `{f}` |" not in SECTION} == set()


def test_the_exit_statuses_are_the_codes() -> None:
    documented = {int(n) for n in re.findall(r"^\| (\d) \|", SECTION, flags=re.MULTILINE)}
    returned = {_status_command.EXIT_ERROR, _status_command.EXIT_USAGE, *map(int, WaitOutcome)}
    assert documented == returned == {0, 1, 2, 3, 4}
