"""``hotconf-operator``: parse settings, log in, load the signing key (and the webhook's
certificate, when the operator keeps it), run kopf.

The console script's entry point. Everything long-lived is built here, once, and handed to the
handlers through ``_handlers.Runtime``; kopf runs with its own registry (not the global one),
cluster-wide or on the namespaces given, with peering unless ``--standalone``, with its
liveness endpoint on the health port and the sidecar injection webhook on the webhook port.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import sys
from collections.abc import Sequence
from typing import Any

import kopf

from hotconf_operator._decide import snapshot_of
from hotconf_operator._delivery import Deliverer
from hotconf_operator._errors import KubeApiError, OperatorError, SettingsError
from hotconf_operator._gc import HeapKeeper
from hotconf_operator._handlers import Runtime, register
from hotconf_operator._history_store import HistoryStore
from hotconf_operator._injection import InjectionSettings
from hotconf_operator._kubeapi import KubeApi, login
from hotconf_operator._metrics import Metrics, WatchRestartCounter, serve
from hotconf_operator._peering import PauseWatcher
from hotconf_operator._pusher import Pusher
from hotconf_operator._reconcile import Reconciler
from hotconf_operator._reporter import StatusReporter
from hotconf_operator._rollout import RolloutManager
from hotconf_operator._settings import OperatorConfig, parse_settings
from hotconf_operator._sidecar_http import idle_connections_allowed
from hotconf_operator._signing import Signer, load_signer
from hotconf_operator._webhook_tls import CaBundleKeeper, ensure_certificate, write_files
from hotconf_wire.logs import LogFormat, setup_logging
from hotconf_wire.protocol import ConfigMapRef
from hotconf_wire.settings import LogLevel
from hotconf_wire.trace import Tracer

__all__ = ["main"]

logger = logging.getLogger("hotconf_operator")


def _setup_logging(level: LogLevel, log_format: LogFormat) -> None:
    setup_logging(level.number, log_format)
    # kopf logs every handler call at INFO; keep its chatter out unless asked for.
    if level != "debug":
        logging.getLogger("kopf").setLevel(logging.WARNING)
        # The webhook server's access log: one line per pod created in the selected namespaces.
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def injection_settings(config: OperatorConfig, signer: Signer) -> InjectionSettings | None:
    """What the webhook injects: the configured image, the public half of the signing key (so
    injected sidecars verify this operator's pushes), the configured resources. None without an
    image: the webhook then injects nothing and ``_misses`` reports the annotated pods."""
    if not config.sidecar.image:
        return None
    settings = InjectionSettings(
        image=config.sidecar.image,
        public_key_pem=signer.trusted_pem().decode("ascii"),
        port=config.sidecar.port,
        security_context=config.sidecar.security_context,
    )
    resources = config.sidecar.resources
    if resources is not None:
        settings = dataclasses.replace(
            settings, requests=resources.get("requests", {}), limits=resources.get("limits", {})
        )
    return settings


async def run(config: OperatorConfig) -> None:
    """Run the operator until kopf stops (SIGTERM/SIGINT)."""
    connection = login()
    metrics = Metrics()
    WatchRestartCounter(metrics).install()
    pause = PauseWatcher()
    pause.install()  # kopf logs its pauses at INFO: they show even at --log-level warning
    if config.serving.metrics_port:
        serve(metrics, port=config.serving.metrics_port)
    async with KubeApi(connection, relogin=login) as api:
        signer = await load_signer(config.signing, api=api, ttl=config.push.envelope_ttl)
        keeper: CaBundleKeeper | None = None
        serving = config.serving
        if serving.webhook_port and serving.webhook_cert_secret is not None:
            issued = await ensure_certificate(
                api,
                serving.webhook_cert_secret,
                hosts=serving.webhook_hosts,
                days=serving.webhook_cert_days,
            )
            config = dataclasses.replace(
                config, serving=dataclasses.replace(serving, webhook_cert_dir=write_files(issued))
            )
            if serving.webhook_configuration:
                keeper = CaBundleKeeper(api, serving.webhook_configuration, issued.ca_crt)
                await keeper.keep()
        pusher = Pusher(config.push, max_idle=idle_connections_allowed())

        async def fetch_schema(namespace: str, name: str, key: str) -> str:
            data = (await api.get_configmap(namespace, name)).get("data") or {}
            return str(data[key])

        runtime = Runtime(
            config=config,
            connection=connection,
            metrics=metrics,
            injection=injection_settings(config, signer),
        )
        if config.serving.webhook_port and runtime.injection is None:
            logger.warning("sidecar injection is off: no --sidecar-image / HOTCONF_SIDECAR_IMAGE")
        tracer = Tracer(config.trace_file, proc="operator")
        deliverer = Deliverer(pusher=pusher, signer=signer, metrics=metrics, tracer=tracer)
        reporter = StatusReporter(api)
        runtime.manager = RolloutManager(
            tracer=tracer,
            deliverer=deliverer,
            reporter=reporter,
            metrics=metrics,
            targets=runtime.targets,
            fetch_schema=fetch_schema,
            history=HistoryStore(api, limit=config.history_limit),
        )

        async def current_revision(ref: ConfigMapRef) -> str | None:
            try:
                return snapshot_of(await api.get_configmap(ref.namespace, ref.name)).revision
            except KubeApiError as exc:
                if exc.status == 404:
                    return None
                raise

        async def read_configmap(ref: ConfigMapRef) -> dict[str, Any] | None:
            try:
                return await api.get_configmap(ref.namespace, ref.name)
            except KubeApiError as exc:
                if exc.status == 404:
                    return None
                raise

        runtime.reconciler = Reconciler(
            runtime.manager,
            deliverer=deliverer,
            current_revision=current_revision,
            read_configmap=read_configmap,
            repair=config.repair,
            metrics=metrics,
            reporter=reporter,
            paused=lambda: pause.paused,
        )
        manager = runtime.manager
        runtime.heap_keeper = HeapKeeper(busy=lambda: manager.busy)
        took = runtime.heap_keeper.prepare()  # before kopf watches: no change waits on it
        logger.debug("heap collected and frozen before watching: %.1f ms", took * 1e3)
        registry = kopf.OperatorRegistry()
        register(registry, runtime)
        health = config.serving.health_port
        logger.info(
            "hotconf-operator starting: %s, peering %s, webhook %s",
            "namespaces " + ",".join(config.namespaces) if config.namespaces else "cluster-wide",
            "off" if config.peering.standalone else f"{config.peering.name!r}",
            f"on port {config.serving.webhook_port}" if config.serving.webhook_port else "off",
        )
        keeping = (
            asyncio.create_task(keeper.run_forever(), name="hotconf caBundle keeper")
            if keeper is not None
            else None
        )
        try:
            await kopf.operator(
                registry=registry,
                clusterwide=not config.namespaces,
                namespaces=list(config.namespaces),
                standalone=config.peering.standalone,
                priority=config.peering.priority,
                liveness_endpoint=f"http://0.0.0.0:{health}/healthz" if health else None,
            )
        finally:
            if keeping is not None:
                keeping.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await keeping
            await pusher.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = parse_settings(argv)
    except SettingsError as exc:
        print(f"hotconf-operator: {exc}", file=sys.stderr)
        return 2
    _setup_logging(config.log_level, config.log_format)
    try:
        asyncio.run(run(config))
    except OperatorError as exc:
        logger.error("%s", exc)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
