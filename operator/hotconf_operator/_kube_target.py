"""Which cluster, credentials and namespace a hotconf command line talks to, found as kubectl
finds them.

Called by ``_status_command`` (``hotconf status``) and ``_history_command`` (``hotconf history``
and ``rollback``): each adds :func:`add_arguments` to its parser, reads the result with
:func:`connection_of` and calls :func:`resolve` for a :class:`Target`. Through the official
``kubernetes`` client (the operator itself keeps kopf's login): ``--kubeconfig PATH``, else
``$KUBECONFIG`` (a ``:``-separated list, merged), else ``~/.kube/config``, else the pod's
service account; ``--context NAME`` picks a context (default: ``current-context``). Tokens,
token files, client certificates, CA data or files, ``insecure-skip-tls-verify`` and exec
credential plugins (EKS, GKE, AKS) all work. The namespace is ``-n`` (each command adds its
own, with its own help), else the context's namespace, else ``default``. A kubeconfig that
cannot be used is a :class:`SettingsError` naming the file, the context or the failing exec
plugin (its command and stderr, never its arguments); a failed request becomes a
:class:`KubeApiError` naming the resource, the namespace and why (:func:`api_error`). No token
is ever printed. Needs the ``kubectl`` extra alone (``.importlinter``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as kube_client
from kubernetes import config as kube_config

from hotconf_operator._errors import KubeApiError, SettingsError

__all__ = ["Connection", "Target", "add_arguments", "api_error", "connection_of", "resolve"]

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Connection:
    """Where a command asks, from its command line and the environment (:func:`connection_of`)."""

    namespace: str | None  # -n; None: the context's namespace
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--kubeconfig``, ``--context`` and ``--request-timeout``, as kubectl has them."""
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


def connection_of(
    args: argparse.Namespace, environ: Mapping[str, str], parser: argparse.ArgumentParser
) -> Connection:
    """The :class:`Connection` of parsed ``args`` (with ``namespace``); exits through
    ``parser.error`` on a bad value, as argparse does."""
    if args.request_timeout <= 0:
        parser.error("--request-timeout must be a positive number of seconds")
    if args.kubeconfig is not None:
        paths: tuple[Path, ...] = (Path(args.kubeconfig).expanduser(),)
    elif environ.get("KUBECONFIG"):
        paths = tuple(Path(p).expanduser() for p in environ["KUBECONFIG"].split(os.pathsep) if p)
    else:
        paths = (Path("~/.kube/config").expanduser(),)
    return Connection(
        namespace=args.namespace,
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


def _from_kubeconfig(options: Connection, paths: Sequence[Path]) -> Target:
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


def _from_service_account(options: Connection) -> Target:
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


def resolve(options: Connection) -> Target:
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


def api_error(exc: Exception, *, what: str, target: Target) -> KubeApiError:
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
