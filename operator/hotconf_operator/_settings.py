"""Typed settings of hotconf-operator, parsed from flags and environment variables in one place.

Called once by ``__main__.main``; every other module receives an :class:`OperatorConfig` (or the
group it needs) and never reads the environment itself. A flag wins over its environment
variable, which wins over the default. ``hotconf-operator --help`` lists each setting with its
variable and default; ``docs/operator.md`` explains the reasons for the defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hotconf_operator._errors import SettingsError

__all__ = [
    "ENVIRONMENT",
    "OperatorConfig",
    "PeeringConfig",
    "PushConfig",
    "ServingConfig",
    "SidecarConfig",
    "SigningConfig",
    "build_parser",
    "parse_settings",
]

#: A Kubernetes namespace name (an RFC 1123 label).
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


@dataclass(frozen=True)
class SigningConfig:
    """Where the Ed25519 private key comes from: a PEM file, or a Secret ``ns/name``."""

    key_file: Path | None = None
    key_secret: str | None = None  # "namespace/name", key private.pem; created if missing


@dataclass(frozen=True)
class PushConfig:
    """How pushes to sidecars behave.

    ``concurrency`` bounds the pushes in flight across all ConfigMaps (one TCP connection each);
    ``timeout`` must exceed the sidecar's ACK timeout (5 s by default) so a slow client shows up
    as the sidecar's ``timeout`` verdict rather than as an unreachable pod; ``attempts`` counts
    the first try; backoff doubles from ``backoff_base`` up to ``backoff_max``, with full jitter.
    """

    concurrency: int = 128
    timeout: float = 10.0  # seconds, per attempt
    attempts: int = 4
    backoff_base: float = 0.05  # seconds
    backoff_max: float = 2.0  # seconds
    envelope_ttl: float = 60.0  # seconds an envelope stays valid after signing


@dataclass(frozen=True)
class PeeringConfig:
    """kopf peering: among replicas with one peering name, only the highest priority works."""

    standalone: bool = False
    name: str = "hotconf"
    priority: int = 0  # parse_settings draws a random one when none is given
    #: Seconds a replica's peering record counts as alive (kopf's default): a replica that died
    #: without removing its record (SIGKILL, node loss) blocks the others for up to this long.
    lifetime: int = 60


@dataclass(frozen=True)
class ServingConfig:
    """Ports the operator serves; 0 disables a server (tests run several operators).

    ``webhook_port`` 0 also turns sidecar injection off (no admission handler is registered:
    kopf refuses admission handlers without a server). Without ``webhook_cert_dir`` kopf makes a
    self-signed certificate, for development only: the API server would not trust it.
    """

    metrics_port: int = 9090
    health_port: int = 8080
    webhook_port: int = 9443
    webhook_cert_dir: Path | None = None


@dataclass(frozen=True)
class SidecarConfig:
    """What the webhook injects. An empty ``image`` leaves the webhook served but injecting
    nothing (each annotated pod then gets a ``SidecarNotInjected`` Event saying why).

    ``resources`` is the sidecar container's ``resources`` object (``requests``/``limits``);
    None keeps the injection's own defaults (10m CPU, 48Mi requested, 128Mi memory limit, sized
    on the sidecar's measured ~40 MB idle resident memory).
    """

    image: str = ""
    resources: dict[str, dict[str, str]] | None = None
    #: The injected sidecar's HTTP port, unless the pod's ``hotconf.dev/port`` names another.
    port: int = 8790


@dataclass(frozen=True)
class OperatorConfig:
    """All settings of one operator process."""

    namespaces: tuple[str, ...] = ()  # empty: cluster-wide
    signing: SigningConfig = field(default_factory=SigningConfig)
    push: PushConfig = field(default_factory=PushConfig)
    peering: PeeringConfig = field(default_factory=PeeringConfig)
    serving: ServingConfig = field(default_factory=ServingConfig)
    sidecar: SidecarConfig = field(default_factory=SidecarConfig)
    reconcile_interval: float = 30.0  # seconds between safety reconciles against /v1/state
    log_level: str = "info"


# (flag, environment variable, help) for every setting, in --help order.
_ENV = {
    "namespace": "HOTCONF_NAMESPACES",
    "signing_key_file": "HOTCONF_SIGNING_KEY_FILE",
    "signing_key_secret": "HOTCONF_SIGNING_KEY_SECRET",
    "metrics_port": "HOTCONF_METRICS_PORT",
    "health_port": "HOTCONF_HEALTH_PORT",
    "webhook_port": "HOTCONF_WEBHOOK_PORT",
    "webhook_cert_dir": "HOTCONF_WEBHOOK_CERT_DIR",
    "sidecar_image": "HOTCONF_SIDECAR_IMAGE",
    "sidecar_resources": "HOTCONF_SIDECAR_RESOURCES",
    "sidecar_port": "HOTCONF_SIDECAR_PORT",
    "standalone": "HOTCONF_STANDALONE",
    "peering_name": "HOTCONF_PEERING_NAME",
    "peering_priority": "HOTCONF_PEERING_PRIORITY",
    "peering_lifetime": "HOTCONF_PEERING_LIFETIME",
    "push_concurrency": "HOTCONF_PUSH_CONCURRENCY",
    "push_timeout": "HOTCONF_PUSH_TIMEOUT",
    "push_attempts": "HOTCONF_PUSH_ATTEMPTS",
    "envelope_ttl": "HOTCONF_ENVELOPE_TTL",
    "reconcile_interval": "HOTCONF_RECONCILE_INTERVAL",
    "log_level": "HOTCONF_LOG_LEVEL",
}


#: Every environment variable the operator reads (for the chart's wiring test, and docs).
ENVIRONMENT = frozenset(_ENV.values())


def build_parser() -> argparse.ArgumentParser:
    """The ``hotconf-operator`` argument parser; each help names its environment variable."""
    p = argparse.ArgumentParser(
        prog="hotconf-operator",
        description="Watch ConfigMaps labelled hotconf.dev/enabled=true, validate them and roll "
        "each revision out, signed, to the sidecars of the pods annotated "
        "hotconf.dev/configmaps. Every flag has an environment variable; the flag wins.",
    )

    def add(name: str, help: str, **kwargs: Any) -> None:
        flag = "--" + name.replace("_", "-")
        p.add_argument(flag, dest=name, help=f"{help} [env {_ENV[name]}]", **kwargs)

    add(
        "namespace",
        "namespace to watch; repeat for several (env: comma list). None: all namespaces",
        action="append",
        metavar="NS",
    )
    add("signing_key_file", "PEM file holding the Ed25519 private key", metavar="PATH")
    add(
        "signing_key_secret",
        "Secret NS/NAME holding the key as private.pem; created with a new key if missing",
        metavar="NS/NAME",
    )
    add("metrics_port", "Prometheus metrics port, 0 disables (default 9090)", type=int)
    add("health_port", "liveness port serving /healthz, 0 disables (default 8080)", type=int)
    add(
        "webhook_port",
        "sidecar injection webhook port (HTTPS), 0 disables injection (default 9443)",
        type=int,
    )
    add(
        "webhook_cert_dir",
        "directory with tls.crt and tls.key for the webhook (default: self-signed, dev only)",
        metavar="DIR",
    )
    add(
        "sidecar_image",
        "image of the injected sidecar; empty: the webhook injects nothing",
        metavar="IMAGE",
    )
    add(
        "sidecar_resources",
        'the injected sidecar\'s resources as JSON, e.g. {"requests":{"cpu":"10m"}}',
        metavar="JSON",
    )
    add(
        "sidecar_port",
        "the injected sidecar's HTTP port unless a pod's hotconf.dev/port names one (8790)",
        type=int,
        metavar="PORT",
    )
    add(
        "standalone",
        "run without kopf peering (one replica only; default: peer when a KopfPeering exists)",
        action="store_const",
        const="true",
    )
    add("peering_name", "name of the KopfPeering object replicas share (default hotconf)")
    add("peering_priority", "peering priority; highest works (default: random)", type=int)
    add(
        "peering_lifetime",
        "seconds a replica's peering record stays alive without renewal (default 60)",
        type=int,
    )
    add("push_concurrency", "pushes in flight at once (default 128)", type=int)
    add("push_timeout", "seconds per push attempt (default 10)", type=float)
    add("push_attempts", "attempts per push, counting the first (default 4)", type=int)
    add("envelope_ttl", "seconds a signed envelope stays valid (default 60)", type=float)
    add("reconcile_interval", "seconds between safety reconciles (default 30)", type=float)
    add("log_level", "debug, info, warning or error (default info)")
    return p


def _env_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"{name}={value!r} is not a boolean; use true or false")


def _number(name: str, value: Any, kind: type[int] | type[float]) -> int | float:
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise SettingsError(
            f"{_ENV[name]} (--{name.replace('_', '-')}) = {value!r} is not a {kind.__name__}"
        ) from None


def _resources(raw: str) -> dict[str, dict[str, str]]:
    """``HOTCONF_SIDECAR_RESOURCES``: a JSON ``resources`` object (the chart's toJson)."""
    where = "HOTCONF_SIDECAR_RESOURCES (--sidecar-resources)"
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise SettingsError(f"{where} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise SettingsError(f"{where} must be a JSON object with requests and/or limits")
    result: dict[str, dict[str, str]] = {}
    for part, quantities in value.items():
        if part not in ("requests", "limits"):
            raise SettingsError(f"{where}: unknown field {part!r}; use requests and limits")
        if not isinstance(quantities, dict) or not all(
            isinstance(q, str | int | float) and not isinstance(q, bool)
            for q in quantities.values()
        ):
            raise SettingsError(
                f"{where}: {part} must map resource names to quantities, e.g. "
                '{"cpu": "10m", "memory": "48Mi"}'
            )
        # Kubernetes quantities are strings; a bare number from toJson (cpu: 1) is one too.
        result[part] = {str(k): str(q) for k, q in quantities.items()}
    return result


def parse_settings(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> OperatorConfig:
    """Parse flags and environment into one :class:`OperatorConfig`; raise SettingsError."""

    env = dict(os.environ if environ is None else environ)
    args = vars(build_parser().parse_args(argv))

    def pick(name: str) -> object:
        value = args.get(name)
        if value is None and _ENV[name] in env:
            return env[_ENV[name]]
        return value

    raw_ns = args.get("namespace")
    if raw_ns is None:
        raw_ns = [n for n in env.get(_ENV["namespace"], "").split(",")]
    namespaces = tuple(sorted({n.strip() for n in raw_ns if n.strip()}))
    for namespace in namespaces:
        if not _NAMESPACE.fullmatch(namespace):
            raise SettingsError(
                f"--namespace / HOTCONF_NAMESPACES: {namespace!r} is not a namespace name "
                "(lower-case letters, digits and '-', at most 63; patterns are not supported)"
            )

    def num(name: str, default: int | float, kind: type[int] | type[float]) -> int | float:
        value = pick(name)
        return default if value is None else _number(name, value, kind)

    key_file = pick("signing_key_file")
    key_secret = pick("signing_key_secret")
    if key_secret is not None and str(key_secret).count("/") != 1:
        raise SettingsError(
            f"--signing-key-secret / HOTCONF_SIGNING_KEY_SECRET = {key_secret!r}: "
            "expected NAMESPACE/NAME"
        )
    if not key_file and not key_secret:
        raise SettingsError(
            "no signing key: set --signing-key-file (HOTCONF_SIGNING_KEY_FILE) or "
            "--signing-key-secret (HOTCONF_SIGNING_KEY_SECRET)"
        )
    signing = SigningConfig(
        key_file=Path(str(key_file)) if key_file else None,
        key_secret=str(key_secret) if key_secret else None,
    )

    push = PushConfig(
        concurrency=int(num("push_concurrency", PushConfig.concurrency, int)),
        timeout=float(num("push_timeout", PushConfig.timeout, float)),
        attempts=int(num("push_attempts", PushConfig.attempts, int)),
        envelope_ttl=float(num("envelope_ttl", PushConfig.envelope_ttl, float)),
    )
    if push.concurrency < 1 or push.attempts < 1 or push.timeout <= 0 or push.envelope_ttl <= 0:
        raise SettingsError(
            "push concurrency and attempts must be >= 1, push timeout and envelope TTL > 0"
        )

    standalone_raw = pick("standalone")
    priority = pick("peering_priority")
    peering = PeeringConfig(
        standalone=_env_bool(_ENV["standalone"], str(standalone_raw or "")),
        name=str(pick("peering_name") or PeeringConfig.name),
        # A random priority makes exactly one replica the active one: kopf pauses operators
        # that see a peer with a higher *or equal* priority, so equal priorities pause all.
        priority=(
            random.randint(1, 2**31 - 1)
            if priority is None
            else int(_number("peering_priority", priority, int))
        ),
        lifetime=int(num("peering_lifetime", PeeringConfig.lifetime, int)),
    )
    if peering.lifetime < 2:
        raise SettingsError(
            f"{_ENV['peering_lifetime']} (--peering-lifetime) = {peering.lifetime}: must be >= 2 "
            "seconds (kopf renews the record about every lifetime - 5..10 s, at least every 1 s)"
        )

    cert_dir = pick("webhook_cert_dir")
    serving = ServingConfig(
        metrics_port=int(num("metrics_port", ServingConfig.metrics_port, int)),
        health_port=int(num("health_port", ServingConfig.health_port, int)),
        webhook_port=int(num("webhook_port", ServingConfig.webhook_port, int)),
        webhook_cert_dir=Path(str(cert_dir)) if cert_dir else None,
    )
    for port_name in ("metrics_port", "health_port", "webhook_port"):
        port = getattr(serving, port_name)
        if not 0 <= port <= 65535:
            raise SettingsError(f"{_ENV[port_name]} = {port} is not a TCP port (0-65535)")

    raw_resources = pick("sidecar_resources")
    sidecar = SidecarConfig(
        image=str(pick("sidecar_image") or "").strip(),
        resources=None if not raw_resources else _resources(str(raw_resources)),
        port=int(num("sidecar_port", SidecarConfig.port, int)),
    )
    if not 1 <= sidecar.port <= 65535:
        raise SettingsError(
            f"--sidecar-port / HOTCONF_SIDECAR_PORT = {sidecar.port}: not a port (1-65535)"
        )

    interval = float(num("reconcile_interval", OperatorConfig.reconcile_interval, float))
    if interval <= 0:
        raise SettingsError("HOTCONF_RECONCILE_INTERVAL must be > 0 seconds")
    log_level = str(pick("log_level") or "info").lower()
    if log_level not in ("debug", "info", "warning", "error"):
        raise SettingsError(f"HOTCONF_LOG_LEVEL = {log_level!r}: use debug, info, warning, error")

    return OperatorConfig(
        namespaces=namespaces,
        signing=signing,
        push=push,
        peering=peering,
        serving=serving,
        sidecar=sidecar,
        reconcile_interval=interval,
        log_level=log_level,
    )
