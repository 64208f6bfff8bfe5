"""Prometheus metrics of the operator, on their own registry and port.

``__main__`` calls :func:`serve` when a metrics port is set. Through :class:`Metrics`,
``_delivery`` counts pushes, ``_rollout`` times rollouts and counts invalid revisions and pods
by verdict, ``_webhook`` the sidecars it injected and ``_misses`` the annotated pods that came
up without one. Watch restarts are counted from kopf's own watcher log records (kopf has no
hook for them): :class:`WatchRestartCounter` is a logging handler on kopf's watching logger.
"""

from __future__ import annotations

import logging
import platform

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    start_http_server,
)

from hotconf_wire import __version__

__all__ = ["Metrics", "WatchRestartCounter", "serve"]


class Metrics:
    """The operator's metric families."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        # ``*_created`` series double the output and say nothing a scraper needs here (the
        # switch is process-wide; the operator has no other prometheus-client user).
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = registry or CollectorRegistry()
        # process_* (memory, CPU, open fds, start time) as every Prometheus exporter has them.
        ProcessCollector(registry=self.registry)
        self.build_info = Gauge(
            "hotconf_operator_build_info",
            "Always 1: the hotconf version and Python this operator runs.",
            ["version", "python_version"],
            registry=self.registry,
        )
        self.build_info.labels(__version__, platform.python_version()).set(1)
        self.pushes = Counter(
            "hotconf_operator_pushes",
            "Pushes to sidecars by outcome (applied, unchanged, rejected, refused, unreachable).",
            ["outcome"],
            registry=self.registry,
        )
        self.rollout_seconds = Histogram(
            "hotconf_operator_rollout_duration_seconds",
            "From a new revision seen to the last pod's answer, by final phase.",
            ["phase"],
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.caught_up = Counter(
            "hotconf_operator_caught_up_pods",
            "Pods that did not answer a push and were brought to the current revision as soon "
            "as they answered again, before any reconcile sweep.",
            registry=self.registry,
        )
        self.missed_changes = Counter(
            "hotconf_operator_missed_changes",
            "ConfigMap changes (and deletions) no watch event brought within the grace period, "
            "found by the reconcile sweep and handled as their event would have been.",
            registry=self.registry,
        )
        self.convergence_seconds = Histogram(
            "hotconf_operator_convergence_duration_seconds",
            "From a revision first seen to every subscribed pod having it (the status turning "
            "complete), however it got there: the rollout, a pod caught up, a sweep.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=self.registry,
        )
        self.pods = Gauge(
            "hotconf_operator_pods",
            "Subscribed pods by state of the current revision: applied (every application "
            "ACKed it), held (the sidecar holds it, no application is connected), rejected, "
            "pending.",
            ["state"],
            registry=self.registry,
        )
        self.invalid = Counter(
            "hotconf_operator_invalid_configmaps",
            "Revisions that failed validation and were pushed nowhere.",
            registry=self.registry,
        )
        self.watch_restarts = Counter(
            "hotconf_operator_watch_restarts",
            "Kubernetes API watch streams started again (failed watch requests, expired or "
            "inactive streams), by resource.",
            ["resource"],
            registry=self.registry,
        )
        self.injections = Counter(
            "hotconf_operator_injections",
            "Pods the admission webhook added the sidecar to (dry runs excluded).",
            registry=self.registry,
        )
        self.injection_misses = Counter(
            "hotconf_operator_injection_misses",
            "Pods labelled hotconf.dev/inject=true seen without the sidecar (once per pod and "
            "operator start).",
            registry=self.registry,
        )
        self.pods_trusting_keys = Gauge(
            "hotconf_operator_pods_trusting_keys",
            "Pods whose sidecar trusts exactly the signing keys this operator announces, as "
            "their state said at the last reconcile sweep; during a key rotation, compare with "
            "the sum of hotconf_operator_pods.",
            registry=self.registry,
        )
        self.pods_missing_sidecar = Gauge(
            "hotconf_operator_pods_missing_sidecar",
            "Pods labelled hotconf.dev/inject=true that exist now without the sidecar.",
            registry=self.registry,
        )


class WatchRestartCounter(logging.Handler):
    """Counts watch streams that kopf had to start again, from its watcher's log records.

    kopf reconnects a broken watch silently, so the records counted are the ones it does write:
    a watch request that failed (the API is down or refused it: one per failed attempt), a watch
    restarted because its resourceVersion expired (410 Gone), an inactive watch reconnected, and
    any start of a resource's stream after its first.
    """

    _STARTS = ("Starting the watch-stream for ", "Restarting the watch-stream for ")

    def __init__(self, metrics: Metrics) -> None:
        super().__init__(level=logging.DEBUG)
        self._metrics = metrics
        self._seen: set[str] = set()

    def _count(self, resource: str) -> None:
        self._metrics.watch_restarts.labels(resource=resource).inc()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        for prefix in self._STARTS:
            if message.startswith(prefix):
                resource = message[len(prefix) :].split(" ", 1)[0]
                if prefix.startswith("Restarting") or resource in self._seen:
                    self._count(resource)
                self._seen.add(resource)
                return
        if message.startswith("Watch-stream for ") and "inactive" in message:
            self._count(message[len("Watch-stream for ") :].split(" ", 1)[0])
        elif message.startswith("Request attempt") and " failed" in message:
            # "Request attempt #1/9 failed; will retry: GET http://.../configmaps?...watch=true"
            url = next((w for w in message.split() if "://" in w), "")
            if "watch=" in url:
                self._count(url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1])

    def install(self) -> None:
        watcher = logging.getLogger("kopf._cogs.clients.watching")
        watcher.setLevel(logging.DEBUG)
        watcher.addHandler(self)


def serve(metrics: Metrics, *, port: int, host: str = "0.0.0.0") -> None:
    """Serve ``/metrics`` from a daemon thread (prometheus-client's own server)."""
    start_http_server(port, addr=host, registry=metrics.registry)
