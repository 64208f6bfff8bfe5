"""Typed settings of hotconf-operator, parsed from flags and environment variables in one place.

Called once by ``__main__.main``; every other module receives an :class:`OperatorConfig` (or the
group it needs) and never reads the environment itself.

Each setting is one :class:`hotconf_wire.settings.Setting` below (flag, environment variable,
default, ``--help`` text and parser together), read by :func:`hotconf_wire.settings.read_settings`
with the rules every part of hotconf shares: a flag wins over its environment variable, which
wins over the default; an empty value means the default; booleans and log levels parse alike.
The frozen dataclasses after the declarations are what the rest of the operator receives; their
defaults are the declarations' defaults. ``docs/operator.md`` explains the reasons for them.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from hotconf_operator._errors import SettingsError
from hotconf_operator._index import INJECT_SELECTOR
from hotconf_wire import logs, trace
from hotconf_wire.envelope import DEFAULT_PORT
from hotconf_wire.logs import LogFormat, log_format_setting
from hotconf_wire.settings import (
    LogLevel,
    Setting,
    comma_list,
    integer,
    number,
    parse_bool,
    port,
    read_settings,
)
from hotconf_wire.settings import build_parser as build_settings_parser

__all__ = [
    "ALL_PODS",
    "ENVIRONMENT",
    "SETTINGS",
    "ApiRetryConfig",
    "OperatorConfig",
    "PeeringConfig",
    "PushConfig",
    "RepairConfig",
    "ServingConfig",
    "SidecarConfig",
    "SigningConfig",
    "build_parser",
    "parse_settings",
]

#: A Kubernetes namespace name (an RFC 1123 label).
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


# -- the declarations: flag, environment variable, default, help and parser of each setting ----


def _namespace(name: str) -> str:
    if not _NAMESPACE.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a namespace name (lower-case letters, digits and '-', at most 63; "
            "patterns are not supported)"
        )
    return name


def _secret_ref(ref: str) -> str:
    if ref.strip().count("/") != 1:
        raise ValueError("expected NAMESPACE/NAME")
    return ref.strip()


def _peering_lifetime(text: str) -> int:
    value = integer()(text)
    if value < 2:
        raise ValueError(
            "must be >= 2 seconds (kopf renews the record about every lifetime - 5..10 s, at "
            "least every 1 s)"
        )
    return value


NAMESPACES: Final = Setting[tuple[str, ...]](
    flag="--namespace",
    env="HOTCONF_NAMESPACES",
    default=(),
    parse=comma_list(_namespace),
    repeat=True,
    metavar="NS",
    help="namespace to watch; repeat the flag, or give a comma list in the env var",
    shown_default="all namespaces",
)
#: One requirement of a label selector: ``key``, ``!key``, ``key=v``, ``key==v``, ``key!=v``,
#: ``key in (a,b)``, ``key notin (a,b)`` (Kubernetes' syntax; the API server checks the rest).
_LABEL_KEY = r"([a-z0-9A-Z.-]{1,253}/)?[a-z0-9A-Z]([-a-z0-9A-Z_.]{0,61}[a-z0-9A-Z])?"
_LABEL_VALUE = r"([a-z0-9A-Z]([-a-z0-9A-Z_.]{0,61}[a-z0-9A-Z])?)?"
_REQUIREMENT = re.compile(
    rf"\s*(!?{_LABEL_KEY}|{_LABEL_KEY}\s*(==?|!=)\s*{_LABEL_VALUE}"
    rf"|{_LABEL_KEY}\s+(in|notin)\s*\(\s*{_LABEL_VALUE}(\s*,\s*{_LABEL_VALUE})*\s*\))\s*"
)
#: The pod selector that means every pod (the pod watch of earlier builds).
ALL_PODS: Final = "*"


def _pod_selector(text: str) -> str:
    selector = text.strip()
    if selector == ALL_PODS:
        return selector
    # Split on the commas between requirements, not those inside "in (a,b)".
    requirements = re.split(r",(?![^(]*\))", selector)
    for requirement in requirements:
        if not _REQUIREMENT.fullmatch(requirement):
            raise ValueError(
                f"{requirement.strip()!r} is not a label selector requirement (key, !key, "
                f"key=value, key!=value, key in (a,b), key notin (a,b)); {ALL_PODS!r}: every pod"
            )
    return selector


POD_SELECTOR: Final = Setting[str](
    flag="--pod-selector",
    env="HOTCONF_POD_SELECTOR",
    default=INJECT_SELECTOR,
    parse=_pod_selector,
    metavar="SELECTOR",
    help=(
        "label selector of the pods the operator watches, on the API server; those annotated "
        f"hotconf.dev/configmaps get pushes. {ALL_PODS!r}: every pod (for a migration from the "
        "legacy inject annotation)"
    ),
)
SIGNING_KEY_FILE: Final = Setting[Path | None](
    flag="--signing-key-file",
    env="HOTCONF_SIGNING_KEY_FILE",
    default=None,
    parse=Path,
    metavar="PATH",
    help="PEM file holding the Ed25519 private key",
)
SIGNING_KEY_SECRET: Final = Setting[str | None](
    flag="--signing-key-secret",
    env="HOTCONF_SIGNING_KEY_SECRET",
    default=None,
    parse=_secret_ref,
    metavar="NS/NAME",
    help="Secret holding the key as private.pem; created with a new key if missing",
)
METRICS_PORT: Final = Setting(
    flag="--metrics-port",
    env="HOTCONF_METRICS_PORT",
    default=9090,
    parse=port(),
    metavar="PORT",
    help="Prometheus metrics port, 0 disables",
)
HEALTH_PORT: Final = Setting(
    flag="--health-port",
    env="HOTCONF_HEALTH_PORT",
    default=8080,
    parse=port(),
    metavar="PORT",
    help="liveness port serving /healthz, 0 disables",
)
WEBHOOK_PORT: Final = Setting(
    flag="--webhook-port",
    env="HOTCONF_WEBHOOK_PORT",
    default=9443,
    parse=port(),
    metavar="PORT",
    help="sidecar injection webhook port (HTTPS), 0 disables injection",
)
WEBHOOK_CERT_DIR: Final = Setting[Path | None](
    flag="--webhook-cert-dir",
    env="HOTCONF_WEBHOOK_CERT_DIR",
    default=None,
    parse=Path,
    metavar="DIR",
    help="directory with tls.crt and tls.key for the webhook",
    shown_default="self-signed, dev only",
)
WEBHOOK_CERT_SECRET: Final = Setting[str | None](
    flag="--webhook-cert-secret",
    env="HOTCONF_WEBHOOK_CERT_SECRET",
    default=None,
    parse=_secret_ref,
    metavar="NS/NAME",
    help="kubernetes.io/tls Secret the operator keeps its webhook CA and certificate in; "
    "created if missing, reissued when --webhook-hosts change",
)
WEBHOOK_HOSTS: Final = Setting[tuple[str, ...]](
    flag="--webhook-hosts",
    env="HOTCONF_WEBHOOK_HOSTS",
    default=(),
    parse=comma_list(str.strip),
    repeat=True,
    metavar="HOST",
    help="DNS name or IP address the webhook certificate is issued for (with "
    "--webhook-cert-secret); repeat, or a comma list",
)
WEBHOOK_CERT_DAYS: Final = Setting(
    flag="--webhook-cert-days",
    env="HOTCONF_WEBHOOK_CERT_DAYS",
    default=3650,
    parse=integer(minimum=31),
    metavar="DAYS",
    help="validity of a certificate the operator issues; renewed at start-up 30 days before",
)
WEBHOOK_CONFIGURATION: Final = Setting[str | None](
    flag="--webhook-configuration",
    env="HOTCONF_WEBHOOK_CONFIGURATION",
    default=None,
    parse=str.strip,
    metavar="NAME",
    help="MutatingWebhookConfiguration whose caBundle the operator keeps at its CA (with "
    "--webhook-cert-secret)",
)
SIDECAR_IMAGE: Final = Setting(
    flag="--sidecar-image",
    env="HOTCONF_SIDECAR_IMAGE",
    default="",
    parse=str.strip,
    metavar="IMAGE",
    help="image of the injected sidecar; empty: the webhook injects nothing",
)
SIDECAR_RESOURCES: Final = Setting[dict[str, dict[str, str]] | None](
    flag="--sidecar-resources",
    env="HOTCONF_SIDECAR_RESOURCES",
    default=None,
    parse=lambda raw: _resources(raw),
    metavar="JSON",
    help='the injected sidecar\'s resources as JSON, e.g. {"requests":{"cpu":"10m"}}',
    shown_default="10m CPU and 48Mi requested, 128Mi limit",
)
SIDECAR_PORT: Final = Setting(
    flag="--sidecar-port",
    env="HOTCONF_SIDECAR_PORT",
    default=DEFAULT_PORT,
    parse=port(minimum=1),
    metavar="PORT",
    help="the injected sidecar's HTTP port unless a pod's hotconf.dev/port names one",
)
SIDECAR_SECURITY_CONTEXT: Final = Setting[dict[str, object] | None](
    flag="--sidecar-security-context",
    env="HOTCONF_SIDECAR_SECURITY_CONTEXT",
    default=None,
    parse=lambda raw: _json_object(raw),
    metavar="JSON",
    help="the injected sidecar's whole securityContext as JSON (replaces the default)",
    shown_default="restricted: non-root 65532, read-only root, no capabilities",
)
STANDALONE: Final = Setting(
    flag="--standalone",
    env="HOTCONF_STANDALONE",
    default=False,
    parse=parse_bool,
    switch=True,
    help="run without kopf peering, for one replica only",
    shown_default="peer when a KopfPeering exists",
)
PEERING_NAME: Final = Setting(
    flag="--peering-name",
    env="HOTCONF_PEERING_NAME",
    default="hotconf",
    parse=str.strip,
    metavar="NAME",
    help="name of the KopfPeering object replicas share",
)
PEERING_PRIORITY: Final = Setting[int | None](
    flag="--peering-priority",
    env="HOTCONF_PEERING_PRIORITY",
    default=None,  # parse_settings draws a random one
    parse=integer(),
    metavar="N",
    help="peering priority; the highest works",
    shown_default="random",
)
PEERING_LIFETIME: Final = Setting(
    flag="--peering-lifetime",
    env="HOTCONF_PEERING_LIFETIME",
    default=60,
    parse=_peering_lifetime,
    metavar="SECONDS",
    help="seconds a replica's peering record stays alive without renewal",
)
PUSH_CONCURRENCY: Final = Setting(
    flag="--push-concurrency",
    env="HOTCONF_PUSH_CONCURRENCY",
    default=128,
    parse=integer(minimum=1),
    metavar="N",
    help="pushes in flight at once",
)
PUSH_TIMEOUT: Final = Setting(
    flag="--push-timeout",
    env="HOTCONF_PUSH_TIMEOUT",
    default=10.0,
    parse=number(above=0),
    metavar="SECONDS",
    help="seconds per push attempt",
)
PUSH_ATTEMPTS: Final = Setting(
    flag="--push-attempts",
    env="HOTCONF_PUSH_ATTEMPTS",
    default=4,
    parse=integer(minimum=1),
    metavar="N",
    help="attempts per push, counting the first",
)
ENVELOPE_TTL: Final = Setting(
    flag="--envelope-ttl",
    env="HOTCONF_ENVELOPE_TTL",
    default=60.0,
    parse=number(above=0),
    metavar="SECONDS",
    help="seconds a signed envelope stays valid",
)
RECONCILE_INTERVAL: Final = Setting(
    flag="--reconcile-interval",
    env="HOTCONF_RECONCILE_INTERVAL",
    default=30.0,
    parse=number(above=0),
    metavar="SECONDS",
    help="seconds between safety reconciles",
)
TRACE_FILE: Final = trace.TRACE_FILE
HISTORY_LIMIT: Final = Setting(
    flag="--history-limit",
    env="HOTCONF_HISTORY_LIMIT",
    default=10,
    parse=integer(minimum=1),
    metavar="N",
    help="validated revisions kept per ConfigMap as ControllerRevisions (annotation "
    "hotconf.dev/history-limit overrides it per ConfigMap)",
)
API_RETRY_MAX: Final = Setting(
    flag="--api-retry-max",
    env="HOTCONF_API_RETRY_MAX",
    default=0.5,
    parse=number(minimum=0.1, maximum=60),
    metavar="SECONDS",
    help="longest wait between attempts at a failing API request (jittered, each between half "
    "and all of it): after an API outage the operator sees changes again within about this long",
)
LOG_FORMAT: Final = log_format_setting(LogFormat.TEXT)
LOG_LEVEL: Final = logs.LOG_LEVEL

#: Every setting under its --help heading.
SETTINGS: Final[Mapping[str, tuple[Setting[Any], ...]]] = {
    "what to watch": (NAMESPACES, POD_SELECTOR),
    "signing key (one of the two is required)": (SIGNING_KEY_FILE, SIGNING_KEY_SECRET),
    "serving": (METRICS_PORT, HEALTH_PORT, WEBHOOK_PORT, WEBHOOK_CERT_DIR),
    "webhook certificate made by the operator": (
        WEBHOOK_CERT_SECRET,
        WEBHOOK_HOSTS,
        WEBHOOK_CERT_DAYS,
        WEBHOOK_CONFIGURATION,
    ),
    "injected sidecar": (
        SIDECAR_IMAGE,
        SIDECAR_RESOURCES,
        SIDECAR_PORT,
        SIDECAR_SECURITY_CONTEXT,
    ),
    "peering": (STANDALONE, PEERING_NAME, PEERING_PRIORITY, PEERING_LIFETIME),
    "pushes": (PUSH_CONCURRENCY, PUSH_TIMEOUT, PUSH_ATTEMPTS, ENVELOPE_TTL),
    "operation": (
        RECONCILE_INTERVAL,
        HISTORY_LIMIT,
        API_RETRY_MAX,
        LOG_LEVEL,
        LOG_FORMAT,
        TRACE_FILE,
    ),
}

#: Every environment variable the operator reads (for the chart's wiring test, and docs).
ENVIRONMENT: Final = frozenset(s.env for group in SETTINGS.values() for s in group)

_PROG: Final = "hotconf-operator"
_DESCRIPTION: Final = (
    "Watch ConfigMaps labelled hotconf.dev/enabled=true, validate them and roll each revision "
    "out, signed, to the sidecars of the pods labelled hotconf.dev/inject=true and annotated "
    "hotconf.dev/configmaps. Every flag has "
    "an environment variable; the flag wins. Booleans: true/false, yes/no, on/off, 1/0."
)


def build_parser() -> argparse.ArgumentParser:
    """The ``hotconf-operator`` argument parser; each help names its default and variable."""
    return build_settings_parser(SETTINGS, prog=_PROG, description=_DESCRIPTION)


def _json_object(raw: str) -> dict[str, object]:
    """``HOTCONF_SIDECAR_SECURITY_CONTEXT``: a JSON object (the chart's toJson), passed to the
    pod as is; the API server validates it when the pod is created."""
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError('must be a JSON object, e.g. {"runAsNonRoot": true}')
    return value


def _resources(raw: str) -> dict[str, dict[str, str]]:
    """``HOTCONF_SIDECAR_RESOURCES``: a JSON ``resources`` object (the chart's toJson)."""
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError("must be a JSON object with requests and/or limits")
    result: dict[str, dict[str, str]] = {}
    for part, quantities in value.items():
        if part not in ("requests", "limits"):
            raise ValueError(f"unknown field {part!r}; use requests and limits")
        if not isinstance(quantities, dict) or not all(
            isinstance(q, str | int | float) and not isinstance(q, bool)
            for q in quantities.values()
        ):
            raise ValueError(
                f"{part} must map resource names to quantities, e.g. "
                '{"cpu": "10m", "memory": "48Mi"}'
            )
        # Kubernetes quantities are strings; a bare number from toJson (cpu: 1) is one too.
        result[part] = {str(k): str(q) for k, q in quantities.items()}
    return result


# -- the typed, grouped result ------------------------------------------------------------------


@dataclass(frozen=True)
class SigningConfig:
    """Where the Ed25519 private key comes from: a PEM file, or a Secret ``ns/name``."""

    key_file: Path | None = SIGNING_KEY_FILE.default
    #: "namespace/name", key private.pem; created if missing.
    key_secret: str | None = SIGNING_KEY_SECRET.default


@dataclass(frozen=True)
class PushConfig:
    """How pushes to sidecars behave.

    ``concurrency`` bounds the pushes in flight across all ConfigMaps (one TCP connection each);
    ``timeout`` must exceed the sidecar's ACK timeout (5 s by default) so a slow client shows up
    as the sidecar's ``timeout`` verdict rather than as an unreachable pod; ``attempts`` counts
    the first try; backoff doubles from ``backoff_base`` up to ``backoff_max``, with full jitter.
    """

    concurrency: int = PUSH_CONCURRENCY.default
    timeout: float = PUSH_TIMEOUT.default  # seconds, per attempt
    attempts: int = PUSH_ATTEMPTS.default
    backoff_base: float = 0.05  # seconds
    backoff_max: float = 2.0  # seconds
    envelope_ttl: float = ENVELOPE_TTL.default  # seconds an envelope stays valid after signing


@dataclass(frozen=True)
class RepairConfig:
    """How the operator repairs what a push or a watch missed (``_reconcile``).

    A pod left pending because it did not answer (its sidecar killed, restarting, or cut off) is
    probed with one ``GET /v2/state`` of at most ``probe_timeout`` seconds, first after
    ``probe_first`` seconds and then at intervals doubling up to ``probe_every``, for
    ``window`` seconds; once it answers it is reconciled at once. ``probe_every`` bounds how long
    a pod that is back waits for the revision it missed (1 s: about one cheap GET per second per
    unreachable pod); after ``window`` the sweep (``--reconcile-interval``) takes over, so a pod
    that is gone for good costs nothing more than the sweep. A ConfigMap whose revision in the
    API differs from the one this replica last saw, with no watch event for ``drift_grace``
    seconds, is taken as a missed event and handled as if the event had come (5 s: far longer
    than a watch event takes, short against the sweep).
    """

    probe_first: float = 0.1  # seconds
    probe_every: float = 1.0  # seconds
    probe_timeout: float = 1.0  # seconds; a state read answers at once, it waits on no client
    window: float = 300.0  # seconds
    drift_grace: float = 5.0  # seconds


@dataclass(frozen=True)
class PeeringConfig:
    """kopf peering: among replicas with one peering name, only the highest priority works."""

    standalone: bool = STANDALONE.default
    name: str = PEERING_NAME.default
    priority: int = 0  # parse_settings draws a random one when none is given
    #: Seconds a replica's peering record counts as alive (kopf's default): a replica that died
    #: without removing its record (SIGKILL, node loss) blocks the others for up to this long.
    lifetime: int = PEERING_LIFETIME.default


@dataclass(frozen=True)
class ServingConfig:
    """Ports the operator serves; 0 disables a server (tests run several operators).

    ``webhook_port`` 0 also turns sidecar injection off (no admission handler is registered:
    kopf refuses admission handlers without a server). The certificate comes from files
    (``webhook_cert_dir``: cert-manager's, or your own), or the operator makes and keeps it in
    ``webhook_cert_secret`` for ``webhook_hosts`` and sets the caBundle of
    ``webhook_configuration`` (``_webhook_tls``: a chart rendered by a GitOps tool cannot
    generate it). With neither, kopf makes a self-signed one, for development only.
    """

    metrics_port: int = METRICS_PORT.default
    health_port: int = HEALTH_PORT.default
    webhook_port: int = WEBHOOK_PORT.default
    webhook_cert_dir: Path | None = WEBHOOK_CERT_DIR.default
    webhook_cert_secret: str | None = WEBHOOK_CERT_SECRET.default
    webhook_hosts: tuple[str, ...] = WEBHOOK_HOSTS.default
    webhook_cert_days: int = WEBHOOK_CERT_DAYS.default
    webhook_configuration: str | None = WEBHOOK_CONFIGURATION.default


@dataclass(frozen=True)
class SidecarConfig:
    """What the webhook injects. An empty ``image`` leaves the webhook served but injecting
    nothing (each annotated pod then gets a ``SidecarNotInjected`` Event saying why).

    ``resources`` is the sidecar container's ``resources`` object (``requests``/``limits``);
    None keeps the injection's own defaults (10m CPU, 48Mi requested, 128Mi memory limit, sized
    on the sidecar's 45 MB resident memory target).
    """

    image: str = SIDECAR_IMAGE.default
    resources: dict[str, dict[str, str]] | None = SIDECAR_RESOURCES.default
    #: The injected sidecar's HTTP port, unless the pod's ``hotconf.dev/port`` names another.
    port: int = SIDECAR_PORT.default
    #: The sidecar container's whole securityContext; None keeps the injection's hardened one.
    security_context: dict[str, object] | None = SIDECAR_SECURITY_CONTEXT.default


@dataclass(frozen=True)
class ApiRetryConfig:
    """How kopf retries a failing API request (:class:`hotconf_operator._backoff.ApiRetryDelays`).

    Delays double from ``first`` to ``most``, each drawn between half its bound and its bound.
    ``most`` is what an API outage costs after the API is back: kopf's default delays grow to
    5, 8, 13, 21 s, so a change made right after a 5 s outage reached the pods 2 s later; 0.5 s
    brings it within 1 s, while one request still retries at most every 0.25 s (no storm; a
    429's Retry-After is obeyed when longer). ``budget`` keeps a request that is not a watch
    trying for 30-60 s before it fails, as long as kopf's default (54 s) does.
    """

    first: float = 0.1  # seconds
    most: float = API_RETRY_MAX.default  # seconds
    budget: float = 60.0  # seconds of delay bounds before a request fails


@dataclass(frozen=True)
class OperatorConfig:
    """All settings of one operator process."""

    namespaces: tuple[str, ...] = NAMESPACES.default  # empty: cluster-wide
    #: The pod watch's label selector, applied by the API server; ``ALL_PODS``: none.
    pod_selector: str = POD_SELECTOR.default
    signing: SigningConfig = field(default_factory=SigningConfig)
    push: PushConfig = field(default_factory=PushConfig)
    repair: RepairConfig = field(default_factory=RepairConfig)
    peering: PeeringConfig = field(default_factory=PeeringConfig)
    serving: ServingConfig = field(default_factory=ServingConfig)
    sidecar: SidecarConfig = field(default_factory=SidecarConfig)
    #: Seconds between safety reconciles against each sidecar's /v2/state (STATE_PATH).
    reconcile_interval: float = RECONCILE_INTERVAL.default
    #: Validated revisions kept per ConfigMap (ControllerRevisions): ten, as a Deployment's
    #: revisionHistoryLimit; each holds a copy of the data (at most 1 MiB).
    history_limit: int = HISTORY_LIMIT.default
    api_retry: ApiRetryConfig = field(default_factory=ApiRetryConfig)
    log_level: LogLevel = LOG_LEVEL.default
    #: Text (logfmt) by default, as the operator has always written; the chart can set json.
    log_format: LogFormat = LOG_FORMAT.default
    #: The rollout trace's file (``hotconf_wire.trace``); empty: no trace.
    trace_file: str = TRACE_FILE.default


# -- parsing ---------------------------------------------------------------------------------------


def parse_settings(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> OperatorConfig:
    """Parse flags and environment into one :class:`OperatorConfig`; raise SettingsError."""
    values = read_settings(
        SETTINGS,
        sys.argv[1:] if argv is None else argv,
        os.environ if environ is None else environ,
        prog=_PROG,
        description=_DESCRIPTION,
        error=SettingsError,
    )
    key_file, key_secret = values[SIGNING_KEY_FILE], values[SIGNING_KEY_SECRET]
    if key_file is None and key_secret is None:
        raise SettingsError(
            f"no signing key: set {SIGNING_KEY_FILE.names} or {SIGNING_KEY_SECRET.names}"
        )
    cert_secret = values[WEBHOOK_CERT_SECRET]
    if cert_secret is not None and values[WEBHOOK_CERT_DIR] is not None:
        raise SettingsError(
            f"{WEBHOOK_CERT_DIR.names} and {WEBHOOK_CERT_SECRET.names} both name the webhook's "
            "certificate; give one"
        )
    if cert_secret is not None and not values[WEBHOOK_HOSTS]:
        raise SettingsError(
            f"{WEBHOOK_CERT_SECRET.names} needs {WEBHOOK_HOSTS.names}: the names the API server "
            "calls the webhook by (the chart passes its Service's names)"
        )
    if values[WEBHOOK_CONFIGURATION] and cert_secret is None:
        raise SettingsError(
            f"{WEBHOOK_CONFIGURATION.names} needs {WEBHOOK_CERT_SECRET.names}: the operator sets "
            "the caBundle of a certificate it made"
        )
    priority = values[PEERING_PRIORITY]
    namespaces = values[NAMESPACES]
    return OperatorConfig(
        namespaces=tuple(sorted(set(namespaces))),
        pod_selector=values[POD_SELECTOR],
        signing=SigningConfig(key_file=key_file, key_secret=key_secret),
        push=PushConfig(
            concurrency=values[PUSH_CONCURRENCY],
            timeout=values[PUSH_TIMEOUT],
            attempts=values[PUSH_ATTEMPTS],
            envelope_ttl=values[ENVELOPE_TTL],
        ),
        peering=PeeringConfig(
            standalone=values[STANDALONE],
            name=values[PEERING_NAME],
            # A random priority makes exactly one replica the active one: kopf pauses operators
            # that see a peer with a higher *or equal* priority, so equal priorities pause all.
            priority=random.randint(1, 2**31 - 1) if priority is None else priority,
            lifetime=values[PEERING_LIFETIME],
        ),
        serving=ServingConfig(
            metrics_port=values[METRICS_PORT],
            health_port=values[HEALTH_PORT],
            webhook_port=values[WEBHOOK_PORT],
            webhook_cert_dir=values[WEBHOOK_CERT_DIR],
            webhook_cert_secret=cert_secret,
            webhook_hosts=values[WEBHOOK_HOSTS],
            webhook_cert_days=values[WEBHOOK_CERT_DAYS],
            webhook_configuration=values[WEBHOOK_CONFIGURATION] or None,
        ),
        sidecar=SidecarConfig(
            image=values[SIDECAR_IMAGE],
            resources=values[SIDECAR_RESOURCES],
            port=values[SIDECAR_PORT],
            security_context=values[SIDECAR_SECURITY_CONTEXT],
        ),
        reconcile_interval=values[RECONCILE_INTERVAL],
        history_limit=values[HISTORY_LIMIT],
        api_retry=ApiRetryConfig(
            first=min(ApiRetryConfig.first, values[API_RETRY_MAX]), most=values[API_RETRY_MAX]
        ),
        log_level=values[LOG_LEVEL],
        log_format=values[LOG_FORMAT],
        trace_file=values[TRACE_FILE],
    )
