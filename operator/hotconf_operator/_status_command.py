"""``hotconf status`` and the kubectl plugin ``kubectl hotconf status``: rollout state at a glance.

Console script ``kubectl-hotconf`` (kubectl finds it on PATH as the ``hotconf`` plugin); the
``hotconf`` CLI of the client library dispatches ``hotconf status ...`` here through
:func:`main` when the operator extra is installed. It lists ConfigMaps labelled
``hotconf.dev/enabled=true`` and prints what the operator wrote in ``hotconf.dev/status``::

    NAMESPACE  NAME  REVISION  PHASE  APPLIED  REJECTED  PENDING  TOTAL  AGE  MESSAGE

It finds the cluster and credentials as kubectl does (``_kube_target``: ``--kubeconfig``,
``$KUBECONFIG``, ``--context``, exec credential plugins, the pod's service account). The
namespace is ``-n``, else the context's namespace, else ``default``; ``-A`` lists every
namespace (and wins over ``-n``, as in kubectl). ``-o`` and ``--no-headers`` are
``_status_output``'s; ``--wait [--timeout DURATION]`` is ``_status_wait``'s. This module and
all it imports need the ``kubectl`` extra alone: never kopf, aiohttp, cryptography or
prometheus_client (``.importlinter``, contract ``kubectl-plugin-is-light``).

Exit status: 0 (with ``--wait``: every selected ConfigMap's current revision applied on every
pod); 1 when the kubeconfig cannot be used (:class:`SettingsError`: unreadable file, unknown
context, a failing exec plugin, named with its stderr) or the API cannot be read
(:class:`KubeApiError`: refused with 401/403, naming the namespace and resource, or
unreachable); 2 for a bad command line; with ``--wait``, 3 when it timed out and 4 when a
rollout halted, was rejected or is invalid (named on stderr). No token is ever printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client as kube_client

from hotconf_operator._errors import KubeApiError, SettingsError
from hotconf_operator._kube_target import (
    Connection,
    Target,
    add_arguments,
    api_error,
    connection_of,
    resolve,
)
from hotconf_operator._status_output import FORMATS, rows, write
from hotconf_operator._status_wait import WaitOutcome, parse_duration, wait_applied

__all__ = ["main", "rows"]

#: --wait's default deadline: a rollout to a few hundred pods takes seconds; five minutes (kubectl
#: rollout status waits forever) leaves room for a staged rollout's pauses yet ends a stuck job.
DEFAULT_TIMEOUT = "5m"
LABEL_SELECTOR = "hotconf.dev/enabled=true"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class StatusOptions:
    """The command line and the environment it reads, parsed in one place (:func:`_options`)."""

    configmap: str | None  # one ConfigMap by name; None: every enabled one
    all_namespaces: bool  # -A: wins over -n, as in kubectl (kubectl get -A -n X lists all)
    output: str  # one of _status_output.FORMATS
    headers: bool  # False with --no-headers
    wait: bool  # --wait: until the current revisions are applied everywhere
    timeout: float  # --timeout, seconds; how long --wait waits
    connection: Connection  # -n, --kubeconfig, --context, --request-timeout


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Show the rollout state of hotconf ConfigMaps (labelled hotconf.dev/enabled=true): "
            "what the operator wrote in their hotconf.dev/status annotation. Cluster, "
            "credentials and namespace come from the kubeconfig as for kubectl (exec credential "
            "plugins included), or from the pod's service account in a cluster."
        ),
        epilog="examples: kubectl hotconf status; kubectl hotconf status -A -o json; "
        "kubectl hotconf status --context prod -n shop web-config; "
        "kubectl hotconf status -n shop --wait --timeout 2m web-config",
    )
    parser.add_argument(
        "configmap", nargs="?", metavar="CONFIGMAP", help="one ConfigMap (default: every one)"
    )
    parser.add_argument(
        "-n",
        "--namespace",
        metavar="NAMESPACE",
        help="namespace to read (default: the context's namespace, else 'default')",
    )
    parser.add_argument(
        "-A",
        "--all-namespaces",
        action="store_true",
        help="list hotconf ConfigMaps in every namespace (overrides -n)",
    )
    parser.add_argument(
        "-o",
        "--output",
        choices=FORMATS,
        default="table",
        help="table (default); wide (adds the pod named and when the status was written); "
        "json or yaml (a list with every field); name (configmap/NAME lines)",
    )
    parser.add_argument(
        "--no-headers",
        action="store_true",
        help="leave out the header line of table and wide output",
    )
    parser.add_argument(
        "--wait",
        action="store_true",
        help="wait until the current revision of every selected ConfigMap is applied on every "
        "pod (progress on stderr); exit status 0 applied, 3 timed out, 4 halted, rejected or "
        "invalid, 1 error, 2 bad command line",
    )
    parser.add_argument(
        "--timeout",
        metavar="DURATION",
        help=f"how long --wait waits, as kubectl's --timeout: 30s, 2m, 1h30m "
        f"(default: {DEFAULT_TIMEOUT})",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"hotconf {importlib.metadata.version('hotconf')}",
        help="print the hotconf version and exit",
    )
    add_arguments(parser)
    return parser


def _options(argv: Sequence[str], environ: Mapping[str, str]) -> StatusOptions:
    prog = "kubectl hotconf status"
    if not Path(sys.argv[0]).name.startswith("kubectl-"):
        prog = "hotconf status"
    parser = _parser(prog)
    argv = list(argv)
    if argv[:1] == ["status"]:  # `kubectl hotconf status ...` and `hotconf status ...`
        argv = argv[1:]
    args = parser.parse_args(argv)
    if args.all_namespaces and args.configmap:
        parser.error("a ConfigMap cannot be read by name across all namespaces: use -n, not -A")
    if args.timeout is not None and not args.wait:
        parser.error("--timeout is how long --wait waits: add --wait")
    try:
        timeout = parse_duration(args.timeout or DEFAULT_TIMEOUT)
    except ValueError as exc:
        parser.error(f"--timeout: {exc}")
    return StatusOptions(
        configmap=args.configmap,
        all_namespaces=args.all_namespaces,
        output=args.output,
        headers=not args.no_headers,
        wait=args.wait,
        timeout=timeout,
        connection=connection_of(args, environ, parser),
    )


def fetch(options: StatusOptions, target: Target) -> list[dict[str, Any]]:
    """Read the ConfigMaps the options ask for; raises :class:`KubeApiError`."""
    namespace = options.connection.namespace or target.namespace
    timeout = options.connection.request_timeout
    with kube_client.ApiClient(target.configuration) as client:
        core = kube_client.CoreV1Api(client)
        if options.configmap:
            what = f"get configmap {options.configmap!r} in namespace {namespace!r}"
        elif options.all_namespaces:
            what = "list configmaps in all namespaces (cluster scope)"
        else:
            what = f"list configmaps in namespace {namespace!r}"
        try:
            if options.configmap:
                one = core.read_namespaced_config_map(
                    options.configmap, namespace, _request_timeout=timeout
                )
                found = [one]
            elif options.all_namespaces:
                found = core.list_config_map_for_all_namespaces(
                    label_selector=LABEL_SELECTOR, _request_timeout=timeout
                ).items
            else:
                found = core.list_namespaced_config_map(
                    namespace, label_selector=LABEL_SELECTOR, _request_timeout=timeout
                ).items
        except (kube_client.ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise api_error(exc, what=what, target=target) from exc
        items: list[dict[str, Any]] = client.sanitize_for_serialization(found or [])
    return items


#: Exit statuses (docs/operator.md, "The status command"); --wait's own are WaitOutcome's.
EXIT_ERROR = 1  # the kubeconfig cannot be used or the API cannot be read (as kubectl: 1)
EXIT_USAGE = 2  # a bad command line (argparse)


def main(argv: Sequence[str] | None = None) -> int:
    """``[status] [options] [CONFIGMAP]`` (``--help`` lists them); returns the exit status."""
    options = _options(sys.argv[1:] if argv is None else argv, os.environ)
    try:
        target = resolve(options.connection)
        if not options.wait:
            write(rows(fetch(options, target)), sys.stdout, output=options.output,
                  headers=options.headers)  # fmt: skip
            return 0
        result = wait_applied(
            lambda: rows(fetch(options, target)), timeout=options.timeout, progress=sys.stderr
        )
    except (SettingsError, KubeApiError) as exc:
        print(f"hotconf status: {exc}", file=sys.stderr)
        return EXIT_ERROR
    write(result.table, sys.stdout, output=options.output, headers=options.headers)
    if result.outcome is WaitOutcome.TIMED_OUT:
        waiting = sum(1 for row in result.table if row not in result.failed)
        print(
            f"hotconf status: timed out after {options.timeout:g}s waiting for"
            f" {waiting or 'any'} ConfigMap(s) to be applied everywhere",
            file=sys.stderr,
        )
    elif result.outcome is WaitOutcome.FAILED:
        names = ", ".join(f"{r['namespace']}/{r['name']} ({r['phase']})" for r in result.failed)
        print(f"hotconf status: rollout did not complete: {names}", file=sys.stderr)
    return int(result.outcome)


if __name__ == "__main__":
    sys.exit(main())
