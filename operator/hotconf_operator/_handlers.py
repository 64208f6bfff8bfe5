"""kopf registration: what the operator watches, and the kopf settings that make it fast.

``__main__`` builds a :class:`Runtime` (the long-lived objects) and calls :func:`register` on a
fresh :class:`kopf.OperatorRegistry`, then :func:`configure` from kopf's start-up handler.

Watched:

* ConfigMaps labelled ``hotconf.dev/enabled: "true"`` (selected server-side by a label
  selector): ``@kopf.on.event`` only, handed to ``_rollout``. No changing handlers, no daemons,
  no timers: those make kopf add finalizers and write its bookkeeping annotations.
* Pods labelled ``hotconf.dev/inject: "true"`` (``--pod-selector``, selected server-side by a
  label selector, so the operator never streams the cluster's other pods), and of those:
* pods annotated ``hotconf.dev/configmaps``: a kopf index (``hotconf_pods``: ConfigMap ->
  subscribed pod sidecars, ``_index``) and an event handler that reconciles a pod once it is
  Running with an IP (``_reconcile``).
* pods that ask for the sidecar: an event handler that reports those admitted without it
  (``_misses``), on the same pod watch.

Served: the sidecar injection webhook (``_webhook``) on kopf's admission server, unless the
webhook port is 0.

Every handler is ``async``: kopf runs sync handlers in a thread pool, which costs latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import kopf

from hotconf_operator._backoff import ApiRetryDelays
from hotconf_operator._gc import HeapKeeper
from hotconf_operator._index import (
    CONFIGMAPS_ANNOTATION,
    PodTarget,
    index_pod,
    pod_ready,
    pod_target,
    subscribed_configmaps,
    targets_of,
)
from hotconf_operator._injection import InjectionSettings
from hotconf_operator._kubeapi import login as fresh_login
from hotconf_operator._metrics import Metrics
from hotconf_operator._misses import MissTracker
from hotconf_operator._reconcile import Reconciler
from hotconf_operator._reporter import EVENT_SOURCE
from hotconf_operator._rollout import RolloutManager
from hotconf_operator._settings import ALL_PODS, OperatorConfig
from hotconf_operator._storage import NoDiffBaseStorage, NoProgressStorage
from hotconf_operator._webhook import NO_IMAGE_REASON, webhook_server
from hotconf_operator._webhook import register as register_webhook
from hotconf_wire.protocol import ConfigMapRef

__all__ = ["ENABLED_LABEL", "EVENT_SOURCE", "INDEX_NAME", "Runtime", "configure", "register"]

ENABLED_LABEL = "hotconf.dev/enabled"
INDEX_NAME = "hotconf_pods"
logger = logging.getLogger("hotconf_operator")


@dataclass
class Runtime:
    """The operator's long-lived objects, shared by the handlers."""

    config: OperatorConfig
    connection: kopf.ConnectionInfo | None = None
    manager: RolloutManager | None = None
    reconciler: Reconciler | None = None
    index: Mapping[Any, Iterable[PodTarget]] = field(default_factory=dict)
    sweeper: asyncio.Task[None] | None = None
    heap_keeper: HeapKeeper | None = None
    heap_task: asyncio.Task[None] | None = None
    metrics: Metrics = field(default_factory=Metrics)
    #: What the webhook injects; None: no sidecar image, the webhook injects nothing.
    injection: InjectionSettings | None = None
    misses: MissTracker | None = None

    def targets(self, ref: ConfigMapRef) -> list[PodTarget]:
        return targets_of(self.index, ref)


def configure(settings: kopf.OperatorSettings, config: OperatorConfig) -> None:
    """kopf settings for hotconf; each choice is explained in docs/operator.md."""
    settings.persistence.progress_storage = NoProgressStorage()
    settings.persistence.diffbase_storage = NoDiffBaseStorage()
    settings.posting.loggers = False  # Events only for what hotconf posts on purpose
    # "From hotconf-operator" in `kubectl describe` and `kubectl events`, not "kopf".
    settings.posting.reporting_component = EVENT_SOURCE
    settings.watching.label_selectors["v1", "configmaps"] = f"{ENABLED_LABEL}=true"
    if config.pod_selector != ALL_PODS:
        settings.watching.label_selectors["v1", "pods"] = config.pod_selector
    # The API server ends a watch after server_timeout; the client gives it a margin, then
    # kopf reconnects after reconnect_backoff, resuming from the last resourceVersion.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 5
    settings.watching.reconnect_backoff = 0.2
    settings.networking.request_timeout = 30
    settings.networking.connect_timeout = 5
    # A failing request (a watch cut by an API outage, too) is retried after short, capped,
    # jittered delays instead of kopf's 1, 1, 2, 3, 5, 8 ... s: back within `most` seconds.
    retry = config.api_retry
    settings.networking.error_backoffs = ApiRetryDelays(
        first=retry.first, most=retry.most, budget=retry.budget
    )
    # With namespaces named, kopf would first list every namespace to match patterns, which
    # the namespaced chart does not grant: kopf retries the refused list for about 55 s before
    # it falls back to the names given, watching nothing meanwhile. hotconf takes exact names
    # only (checked in _settings), so kopf's namespace and CRD scanning is not needed.
    if config.namespaces:
        settings.scanning.disabled = True
    # Standalone mode and the priority are passed to kopf.operator(); the peering name is set
    # here, not there: kopf makes peering mandatory when it gets a name as an argument.
    settings.peering.name = config.peering.name
    settings.peering.lifetime = config.peering.lifetime
    settings.peering.stealth = True
    # The chart owns the MutatingWebhookConfiguration (its caBundle, selectors, failurePolicy):
    # kopf only serves the handler and never writes webhook configurations.
    settings.admission.managed = None
    if config.serving.webhook_port:
        settings.admission.server = webhook_server(
            port=config.serving.webhook_port, cert_dir=config.serving.webhook_cert_dir
        )


def miss_reason(config: OperatorConfig, injection: InjectionSettings | None) -> str:
    """Why an annotated pod may lack the sidecar, as this operator is configured."""
    if not config.serving.webhook_port:
        return "this operator serves no injection webhook (--webhook-port 0)"
    if injection is None:
        return NO_IMAGE_REASON
    return (
        "the injection webhook did not add it when the pod was created (the operator was down, "
        "restarting or unreachable, the pod's namespace is not selected by the webhook, or the "
        "webhook is disabled; with failurePolicy Ignore such pods are admitted as they are)"
    )


def _post_warning(body: Mapping[str, Any], reason: str, message: str) -> None:
    meta = body.get("metadata") or {}
    ref = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {k: meta.get(k) for k in ("namespace", "name", "uid")},
    }
    kopf.warn(kopf.Body(cast(kopf.RawBody, ref)), reason=reason, message=message[:1024])


def register(registry: kopf.OperatorRegistry, runtime: Runtime) -> None:
    """Register hotconf's handlers on ``registry`` (not kopf's global default registry)."""
    if runtime.config.serving.webhook_port:
        register_webhook(registry, runtime.injection, injected=runtime.metrics.injections.inc)
    runtime.misses = MissTracker(
        metrics=runtime.metrics,
        post=_post_warning,
        why=miss_reason(runtime.config, runtime.injection),
    )
    misses = runtime.misses

    @kopf.on.login(registry=registry)
    async def login(**_: Any) -> kopf.ConnectionInfo | None:
        # kopf calls this at start and again after a 401: the first time, the credentials
        # the operator started with; later, fresh ones (a rotated token file, an exec plugin).
        if runtime.connection is not None:
            connection, runtime.connection = runtime.connection, None
            return connection
        return await asyncio.to_thread(fresh_login)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **kwargs: Any) -> None:
        configure(settings, runtime.config)
        runtime.index = kwargs[INDEX_NAME]
        if runtime.reconciler is not None:
            runtime.sweeper = asyncio.create_task(
                runtime.reconciler.run_forever(runtime.config.reconcile_interval),
                name="hotconf reconcile sweeper",
            )
        if runtime.heap_keeper is not None:
            runtime.heap_task = asyncio.create_task(
                runtime.heap_keeper.run_forever(), name="hotconf heap keeper"
            )

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        for task in (runtime.sweeper, runtime.heap_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if runtime.reconciler is not None:
            await runtime.reconciler.aclose()
        if runtime.manager is not None:
            await runtime.manager.aclose()

    @kopf.index(
        "pods", id=INDEX_NAME, annotations={CONFIGMAPS_ANNOTATION: kopf.PRESENT}, registry=registry
    )
    async def hotconf_pods(body: kopf.Body, **_: Any) -> dict[ConfigMapRef, PodTarget]:
        return index_pod(body)

    @kopf.on.event("pods", annotations={CONFIGMAPS_ANNOTATION: kopf.PRESENT}, registry=registry)
    async def pod_event(type: str | None, body: kopf.Body, **_: Any) -> None:
        if runtime.reconciler is None:
            return
        uid = str(body.get("metadata", {}).get("uid", ""))
        if type == "DELETED":
            runtime.reconciler.pod_gone(uid)
            return
        runtime.reconciler.pod_event(
            pod_target(body),
            uid=uid,
            configmaps=subscribed_configmaps(body.get("metadata", {}).get("annotations") or {}),
            ready=pod_ready(body),
        )

    # Unfiltered: the tracker forgets a pod that stops asking (its label or annotation removed).
    @kopf.on.event("pods", registry=registry)
    async def injection_miss(type: str | None, body: kopf.Body, **_: Any) -> None:
        misses.pod_event(type, body)

    @kopf.on.event("configmaps", labels={ENABLED_LABEL: "true"}, registry=registry)
    async def configmap_event(type: str | None, body: kopf.Body, **_: Any) -> None:
        if runtime.manager is None:
            return
        meta = body.get("metadata", {})
        if type == "DELETED":
            await runtime.manager.configmap_deleted(
                ConfigMapRef(str(meta.get("namespace")), str(meta.get("name")))
            )
        else:
            await runtime.manager.configmap_seen(body)
