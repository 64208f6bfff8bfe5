"""The ``hotconf`` command line (console script ``hotconf = hotconf._cli:main``).

Subcommands:

``hotconf dev --configmap FILE [--stop-timeout S] [--poll] -- COMMAND [ARGS...]``
    Serve a ConfigMap manifest to COMMAND on a private socket and relay every save
    (see :mod:`hotconf._dev`). Exits with COMMAND's status.

``hotconf status [-n NAMESPACE | -A] [-o table|wide|json|yaml|name] [--wait] [CONFIGMAP]``
    Rollout state of ConfigMaps in a cluster. Provided by the ``kubectl`` extra (also in
    ``operator``) through the entry point group ``hotconf.commands`` (the library itself never
    imports the operator).

Every option of ``dev`` is parsed here, into :class:`hotconf._dev.DevSettings`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points, version
from pathlib import Path

from hotconf._dev import DevSettings, run_dev

__all__ = ["main"]

#: Subcommands that other parts of the distribution plug in, and the extra that brings each.
PLUGIN_GROUP = "hotconf.commands"
_PLUGIN_EXTRAS = {"status": "kubectl", "history": "kubectl", "rollback": "kubectl"}


def _plugins() -> dict[str, Callable[[Sequence[str]], int]]:
    """Subcommands registered under :data:`PLUGIN_GROUP`, loaded only when called."""
    found: dict[str, Callable[[Sequence[str]], int]] = {}
    for point in entry_points(group=PLUGIN_GROUP):

        def load(argv: Sequence[str], point: object = point) -> int:
            command: Callable[[Sequence[str]], int] = point.load()  # type: ignore[attr-defined]
            return command(argv)

        found[point.name] = load
    return found


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hotconf",
        description="hotconf: configuration hot reload for services on Kubernetes.",
    )
    parser.add_argument("--version", action="version", version=f"hotconf {version('hotconf')}")
    commands = parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
    commands.add_parser(
        "status",
        help="rollout state of hotconf ConfigMaps in a cluster (needs hotconf[kubectl])",
        add_help=False,
    )
    commands.add_parser(
        "history",
        help="the revisions of a ConfigMap and what each rollout did (needs hotconf[kubectl])",
        add_help=False,
    )
    commands.add_parser(
        "rollback",
        help="write an earlier revision back to a ConfigMap (needs hotconf[kubectl])",
        add_help=False,
    )
    dev = commands.add_parser(
        "dev",
        help="run COMMAND on a local ConfigMap file, relaying every save",
        description=(
            "Serve the ConfigMap manifest FILE (as `kubectl apply -f FILE` takes it) to COMMAND "
            "over wire protocol v1 on a private Unix socket (HOTCONF_SOCKET is set for COMMAND), "
            "and relay every saved revision. An invalid save is reported with file and line and "
            "not relayed. Ctrl-C or SIGTERM stops COMMAND cleanly; the exit status is COMMAND's."
        ),
        epilog="example: hotconf dev --configmap examples/quickstart/configmap.yaml -- "
        "python examples/quickstart/worker.py",
    )
    dev.add_argument(
        "--configmap",
        metavar="FILE",
        required=True,
        type=Path,
        help="the ConfigMap manifest to serve and watch",
    )
    dev.add_argument(
        "--stop-timeout",
        metavar="SECONDS",
        type=float,
        default=20.0,
        help="how long COMMAND gets to exit after Ctrl-C/SIGTERM before it is killed "
        "(default: %(default)s)",
    )
    dev.add_argument(
        "--poll",
        action="store_true",
        help="poll the file every 100 ms instead of watching it with watchfiles",
    )
    dev.add_argument(
        "command",
        nargs=argparse.REMAINDER,
        metavar="-- COMMAND [ARGS...]",
        help="the program to run, after --",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments and arguments[0] in _PLUGIN_EXTRAS:
        plugin = _plugins().get(arguments[0])
        if plugin is None:
            extra = _PLUGIN_EXTRAS[arguments[0]]
            print(
                f"hotconf {arguments[0]}: this command comes with the {extra} extra: "
                f"pip install 'hotconf[{extra}]'",
                file=sys.stderr,
            )
            return 2
        return plugin(arguments[1:])
    parser = _parser()
    args = parser.parse_args(arguments)
    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        parser.error("dev: give the program to run after --, e.g. -- python worker.py")
    logging.basicConfig(level=logging.WARNING, format="hotconf dev: %(name)s: %(message)s")
    settings = DevSettings(
        configmap=args.configmap,
        command=tuple(command),
        stop_timeout=args.stop_timeout,
        poll=args.poll,
    )
    return asyncio.run(run_dev(settings))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
