"""``kubectl-hotconf``: the kubectl plugin's entry point, one word per command.

kubectl runs ``kubectl-hotconf`` for ``kubectl hotconf ...``; this picks the command by its first
word: ``history`` and ``rollback`` are ``_history_command``'s, anything else (``status``, or
flags alone, as before) is ``_status_command``'s. Held to the ``kubectl`` extra with them
(``.importlinter``, ``kubectl-plugin-is-light``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from hotconf_operator import _history_command, _status_command

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] in (["history"], ["rollback"]):
        return _history_command.main(arguments)
    return _status_command.main(arguments)


if __name__ == "__main__":
    sys.exit(main())
