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
``-A`` lists every namespace. ``-o json`` prints the same as a JSON list.

Exit status: 0; 1 when the kubeconfig cannot be used (:class:`SettingsError`: unreadable file,
unknown context, a failing exec plugin, named with its stderr) or the API cannot be read
(:class:`KubeApiError`: refused with 401/403, naming the namespace and resource, or
unreachable); 2 for a bad command line. No token is ever printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import logging
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import urllib3
import yaml
from kubernetes import client as kube_client
from kubernetes import config as kube_config

from hotconf_operator._errors import KubeApiError, SettingsError
from hotconf_operator._status import parse_status

__all__ = ["main", "rows"]

COLUMNS = ("NAMESPACE", "NAME", "REVISION", "PHASE", "APPLIED", "REJECTED", "PENDING", "TOTAL",
           "AGE", "MESSAGE")  # fmt: skip
LABEL_SELECTOR = "hotconf.dev/enabled=true"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def _age(stamp: str, now: datetime.datetime) -> str:
    try:
        then = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return "-"
    seconds = int((now - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def rows(
    items: Sequence[dict[str, Any]], *, now: datetime.datetime | None = None
) -> list[dict[str, Any]]:
    """One row per ConfigMap, sorted by namespace and name; ``status`` None if never rolled."""
    now = now or datetime.datetime.now(datetime.UTC)
    out = []
    for item in items:
        meta = item.get("metadata") or {}
        status = parse_status(meta.get("annotations"))
        out.append(
            {
                "namespace": meta.get("namespace", ""),
                "name": meta.get("name", ""),
                "revision": status.revision if status else "",
                "phase": str(status.phase) if status else "unknown",
                "applied": status.applied if status else 0,
                "rejected": status.rejected if status else 0,
                "pending": status.pending if status else 0,
                "total": status.total if status else 0,
                "age": _age(status.time, now) if status and status.time else "-",
                "pod": status.pod if status else "",
                "message": status.message if status else "no status yet",
                "time": status.time if status else "",
            }
        )
    return sorted(out, key=lambda r: (r["namespace"], r["name"]))


def _short(revision: str) -> str:
    return revision.split(":", 1)[-1][:12] if revision else "-"


def print_table(table: list[dict[str, Any]], out: TextIO) -> None:
    cells = [
        [
            r["namespace"], r["name"], _short(r["revision"]), r["phase"], str(r["applied"]),
            str(r["rejected"]), str(r["pending"]), str(r["total"]), r["age"],
            (f"{r['pod']}: " if r["pod"] else "") + r["message"].replace("\n", " ")[:120],
        ]
        for r in table
    ]  # fmt: skip
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(COLUMNS)]
    for row in [list(COLUMNS), *cells]:
        out.write("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() + "\n")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class StatusOptions:
    """The command line and the environment it reads, parsed in one place (:func:`_options`)."""

    configmap: str | None  # one ConfigMap by name; None: every enabled one
    namespace: str | None  # -n; None: the context's namespace
    all_namespaces: bool  # -A: wins over -n, as in kubectl
    output: str  # "table" or "json"
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
        "kubectl hotconf status --context prod -n shop web-config",
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
        choices=["table", "json"],
        default="table",
        help="table (default) or a JSON list with every field",
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


def main(argv: Sequence[str] | None = None) -> int:
    """``[status] [options] [CONFIGMAP]`` (``--help`` lists them); returns the exit status."""
    options = _options(sys.argv[1:] if argv is None else argv, os.environ)
    try:
        items = fetch(options, resolve(options))
    except (SettingsError, KubeApiError) as exc:
        print(f"hotconf status: {exc}", file=sys.stderr)
        return 1
    table = rows(items)
    if options.output == "json":
        json.dump(table, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print_table(table, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
