"""``hotconf status`` and the kubectl plugin ``kubectl hotconf status``: rollout state at a glance.

Console script ``kubectl-hotconf`` (kubectl finds it on PATH as the ``hotconf`` plugin); the
``hotconf`` CLI of the client library dispatches ``hotconf status ...`` here through
:func:`main` when the operator extra is installed. It lists ConfigMaps labelled
``hotconf.dev/enabled=true`` and prints what the operator wrote in ``hotconf.dev/status``::

    NAMESPACE  NAME  REVISION  PHASE  APPLIED  REJECTED  PENDING  TOTAL  AGE  MESSAGE

It finds the cluster and credentials as kubectl does, through the official ``kubernetes``
client (the operator itself keeps kopf's login): ``--kubeconfig PATH``, else ``$KUBECONFIG``
(a ``:``-separated list, merged), else ``~/.kube/config``, else the pod's service account;
``--context NAME`` picks a context (default: ``current-context``). Tokens, token files, client
certificates, CA data or files, ``insecure-skip-tls-verify`` and exec credential plugins (EKS,
GKE, AKS) all work. The namespace is ``-n``, else the context's namespace, else ``default``;
``-A`` lists every namespace (and wins over ``-n``, as in kubectl). ``-o`` and
``--no-headers`` are ``_status_output``'s; ``--wait [--timeout DURATION]`` is
``_status_wait``'s. This module and all it imports need the ``kubectl`` extra alone
(``kubernetes`` and PyYAML): never kopf, aiohttp, cryptography, prometheus_client or
jsonschema (``.importlinter``, contract ``kubectl-plugin-is-light``).

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
import json
import logging
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import urllib3
import yaml
from kubernetes import client as kube_client
from kubernetes import config as kube_config

from hotconf_operator._errors import KubeApiError, SettingsError
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
    namespace: str | None  # -n; None: the context's namespace
    all_namespaces: bool  # -A: wins over -n, as in kubectl (kubectl get -A -n X lists all)
    output: str  # one of _status_output.FORMATS
    headers: bool  # False with --no-headers
    wait: bool  # --wait: until the current revisions are applied everywhere
    timeout: float  # --timeout, seconds; how long --wait waits
    context: str | None  # --context; None: the kubeconfig's current-context
    # --kubeconfig, else $KUBECONFIG's paths, else ~/.kube/config; kubectl's order.
    kubeconfig_paths: tuple[Path, ...]
    kubeconfig_explicit: bool  # from --kubeconfig: it must exist, no fallback to in-cluster
    in_cluster: bool  # $KUBERNETES_SERVICE_HOST and _PORT are set (we run in a pod)
    pod_namespace: str | None  # $POD_NAMESPACE, kubectl's in-cluster namespace override
    request_timeout: float  # seconds per API request (connect and read); a CLI must not hang


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """Where to ask and as whom: a client configuration and the namespace it defaults to."""

    configuration: Any  # kubernetes.client.Configuration
    namespace: str
    where: str  # for messages: "context NAME (SERVER)" or "in-cluster service account"


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
    parser.add_argument(
        "--kubeconfig",
        metavar="PATH",
        type=Path,
        help="kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else in-cluster)",
    )
    parser.add_argument(
        "--context",
        metavar="NAME",
        help="kubeconfig context to use (default: its current-context)",
    )
    parser.add_argument(
        "--request-timeout",
        metavar="SECONDS",
        type=float,
        default=30.0,
        help="give up on an API request after this long (default: %(default)s)",
    )
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
    if args.request_timeout <= 0:
        parser.error("--request-timeout must be a positive number of seconds")
    if args.timeout is not None and not args.wait:
        parser.error("--timeout is how long --wait waits: add --wait")
    try:
        timeout = parse_duration(args.timeout or DEFAULT_TIMEOUT)
    except ValueError as exc:
        parser.error(f"--timeout: {exc}")
    if args.kubeconfig is not None:
        paths: tuple[Path, ...] = (args.kubeconfig.expanduser(),)
    elif environ.get("KUBECONFIG"):
        paths = tuple(Path(p).expanduser() for p in environ["KUBECONFIG"].split(os.pathsep) if p)
    else:
        paths = (Path("~/.kube/config").expanduser(),)
    return StatusOptions(
        configmap=args.configmap,
        namespace=args.namespace,
        all_namespaces=args.all_namespaces,
        output=args.output,
        headers=not args.no_headers,
        wait=args.wait,
        timeout=timeout,
        context=args.context,
        kubeconfig_paths=paths,
        kubeconfig_explicit=args.kubeconfig is not None,
        in_cluster=bool(
            environ.get("KUBERNETES_SERVICE_HOST") and environ.get("KUBERNETES_SERVICE_PORT")
        ),
        pod_namespace=environ.get("POD_NAMESPACE") or None,
        request_timeout=args.request_timeout,
    )


@contextmanager
def _library_errors() -> Iterator[list[str]]:
    """Collect what the kubernetes client logs instead of raising (a failing exec plugin)."""
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.ERROR:
                messages.append(record.getMessage())

    root = logging.getLogger()
    handler = Collect()
    root.addHandler(handler)  # also keeps logging.error() from printing on its own
    try:
        yield messages
    finally:
        root.removeHandler(handler)


def _describe_yaml_error(exc: yaml.YAMLError) -> str:
    """Where and what, never the offending text (it may be a token's line)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or type(exc).__name__
    return f"not valid YAML ({problem}, line {mark.line + 1})" if mark else "not valid YAML"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Kubeconfig:
    """The kubeconfig files merged as kubectl merges them: the first file to name a context or
    a user, or to set ``current-context``, wins."""

    paths: tuple[Path, ...]  # the files that hold something (empty ones are skipped)
    contexts: dict[str, dict[str, Any]]  # name: its "context" mapping (cluster, user, namespace)
    users: dict[str, dict[str, Any]]  # name: its "user" mapping
    current_context: str | None

    @classmethod
    def read(cls, paths: Sequence[Path]) -> Kubeconfig:
        used: list[Path] = []
        contexts: dict[str, dict[str, Any]] = {}
        users: dict[str, dict[str, Any]] = {}
        current: str | None = None
        for path in paths:
            try:
                document = yaml.safe_load(path.read_text())
            except OSError as exc:
                raise SettingsError(
                    f"cannot read kubeconfig {path}: {exc.strerror or exc}"
                ) from exc
            except yaml.YAMLError as exc:
                raise SettingsError(f"kubeconfig {path}: {_describe_yaml_error(exc)}") from exc
            if document is None:
                continue
            if not isinstance(document, dict):
                raise SettingsError(f"kubeconfig {path} is not a kubeconfig (a YAML mapping)")
            used.append(path)
            for section, into, key in (("contexts", contexts, "context"), ("users", users, "user")):
                entries = document.get(section)
                for entry in entries if isinstance(entries, list) else []:
                    value = entry.get(key) or {} if isinstance(entry, dict) else None
                    if isinstance(value, dict) and isinstance(entry.get("name"), str):
                        into.setdefault(entry["name"], value)
            current = current or document.get("current-context") or None
        return cls(paths=tuple(used), contexts=contexts, users=users, current_context=current)

    @property
    def source(self) -> str:
        return "kubeconfig " + ", ".join(str(p) for p in self.paths)


def _from_kubeconfig(options: StatusOptions, paths: Sequence[Path]) -> Target:
    kubeconfig = Kubeconfig.read(paths)
    source = kubeconfig.source
    name = options.context or kubeconfig.current_context
    if not kubeconfig.paths:
        raise SettingsError(f"kubeconfig {', '.join(map(str, paths))} is empty")
    if not name:
        raise SettingsError(f"{source} sets no current-context: pass --context NAME")
    if name not in kubeconfig.contexts:
        known = ", ".join(kubeconfig.contexts) or "none"
        raise SettingsError(
            f"context {name!r} is not in {source}; its contexts: {known}"
            " (kubectl config get-contexts)"
        )
    context = kubeconfig.contexts[name]
    configuration = kube_client.Configuration()
    with _library_errors() as errors:
        try:
            kube_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=os.pathsep.join(str(p) for p in kubeconfig.paths),
                context=name,
                client_configuration=configuration,
                persist_config=False,  # a status command never rewrites the user's kubeconfig
            )
        except OSError as exc:
            raise SettingsError(
                f"context {name!r}: cannot read {exc.filename or 'a file'}: {exc.strerror or exc}"
            ) from exc
        except (kube_config.ConfigException, AttributeError, KeyError, TypeError) as exc:
            raise SettingsError(f"context {name!r} in {source} cannot be used: {exc}") from exc
    user_name = context.get("user")
    plugin = kubeconfig.users.get(user_name, {}).get("exec") if isinstance(user_name, str) else None
    if isinstance(plugin, dict) and errors:
        # The command only: its arguments and environment may carry secrets.
        hint = plugin.get("installHint")  # written for users, as kubectl shows it
        raise SettingsError(
            f"the exec credential plugin {plugin.get('command')!r} of user {user_name!r}"
            f" (context {name!r}) failed: {'; '.join(errors)}"
            + (f". {' '.join(str(hint).split())}" if hint else "")
        )
    configuration.retries = 0  # one attempt per request, as kubectl: --request-timeout bounds it
    return Target(
        configuration=configuration,
        namespace=context.get("namespace") or "default",
        where=f"context {name!r} ({configuration.host})",
    )


def _from_service_account(options: StatusOptions) -> Target:
    configuration = kube_client.Configuration()
    try:
        kube_config.load_incluster_config(  # type: ignore[no-untyped-call]
            client_configuration=configuration
        )
    except kube_config.ConfigException as exc:
        raise SettingsError(f"in-cluster service account cannot be used: {exc}") from exc
    namespace = options.pod_namespace
    if namespace is None:
        try:
            namespace = SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or None
        except OSError:
            namespace = None
    configuration.retries = 0
    return Target(
        configuration=configuration,
        namespace=namespace or "default",
        where=f"in-cluster service account ({configuration.host})",
    )


def resolve(options: StatusOptions) -> Target:
    """The cluster, credentials and default namespace, found as kubectl finds them."""
    existing = [p for p in options.kubeconfig_paths if p.exists()]
    if options.kubeconfig_explicit and not existing:
        raise SettingsError(f"cannot read kubeconfig {options.kubeconfig_paths[0]}: no such file")
    if existing:
        return _from_kubeconfig(options, existing)
    if options.in_cluster and options.context is None:
        return _from_service_account(options)
    tried = ", ".join(str(p) for p in options.kubeconfig_paths)
    raise SettingsError(
        f"no Kubernetes credentials: no kubeconfig at {tried} and not running in a cluster;"
        " pass --kubeconfig PATH or set KUBECONFIG"
    )


def _api_error(exc: Exception, *, what: str, target: Target) -> KubeApiError:
    """A clear message for a failed request: the resource, the namespace, why; no secrets."""
    if isinstance(exc, kube_client.ApiException) and exc.status:
        status = int(exc.status)
        said = ""
        try:  # the API server's Status object says who was refused what
            said = str(json.loads(exc.body or "").get("message") or "")
        except (ValueError, AttributeError):
            pass
        said = f": {said[:300]}" if said else ""
        code = f"HTTP {status} {exc.reason or ''}".rstrip()
        if status == 401:
            return KubeApiError(
                f"the API server did not accept the credentials of {target.where} ({code}) to"
                f" {what}{said}. Log in again (the token may have expired) or check the"
                " context's user in the kubeconfig",
                status=status,
            )
        if status == 403:
            return KubeApiError(
                f"forbidden ({code}): {target.where} may not {what}{said}. Ask for the RBAC"
                " right to do so, or pick another namespace with -n",
                status=status,
            )
        return KubeApiError(f"cannot {what} ({code}) with {target.where}{said}", status=status)
    reason = getattr(exc, "reason", None) or exc  # urllib3 MaxRetryError: the underlying cause
    reason = " ".join(str(reason).split())  # an SSLError comes as "SSLError\n<detail>"
    return KubeApiError(f"cannot reach the API server of {target.where} to {what}: {reason}")


def fetch(options: StatusOptions, target: Target) -> list[dict[str, Any]]:
    """Read the ConfigMaps the options ask for; raises :class:`KubeApiError`."""
    namespace = options.namespace or target.namespace
    timeout = options.request_timeout
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
            raise _api_error(exc, what=what, target=target) from exc
        items: list[dict[str, Any]] = client.sanitize_for_serialization(found or [])
    return items


#: Exit statuses (docs/operator.md, "The status command"); --wait's own are WaitOutcome's.
EXIT_ERROR = 1  # the kubeconfig cannot be used or the API cannot be read (as kubectl: 1)
EXIT_USAGE = 2  # a bad command line (argparse)


def main(argv: Sequence[str] | None = None) -> int:
    """``[status] [options] [CONFIGMAP]`` (``--help`` lists them); returns the exit status."""
    options = _options(sys.argv[1:] if argv is None else argv, os.environ)
    try:
        target = resolve(options)
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
