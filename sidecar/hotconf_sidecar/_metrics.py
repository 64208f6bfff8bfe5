"""Prometheus metrics of one sidecar, in a registry of its own; served on ``GET /metrics``.

Created by :mod:`hotconf_sidecar._sidecar`, which records every push; read by ``_http``.

==========================================  =========  ==========================================
metric                                      type       meaning
==========================================  =========  ==========================================
hotconf_sidecar_pushes_accepted_total       counter    pushes answered 200, by ``status``
                                                       (applied, unchanged)
hotconf_sidecar_pushes_rejected_total       counter    pushes refused, by ``reason``
hotconf_sidecar_relay_seconds               histogram  publish to every client's verdict (or the
                                                       ack timeout), per applied revision
hotconf_sidecar_clients_connected           gauge      relay clients connected now
hotconf_sidecar_applied_revision_info       gauge      1 for the revision held per ConfigMap
                                                       (labels namespace, name, revision)
hotconf_sidecar_applied_sequence            gauge      highest sequence held per ConfigMap
==========================================  =========  ==========================================
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterator
from typing import Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hotconf_wire import __version__
from hotconf_wire.errors import REJECT_REASONS
from hotconf_wire.protocol import ConfigMapRef

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST

# Relay latency is a few milliseconds when clients ACK at once; the tail goes up to the timeout.
_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class _HeldCollector(Collector):
    """The held revision and sequence per ConfigMap, read at scrape time.

    A push only replaces an entry of a dict; a labelled ``Gauge`` would create and remove a
    child (locks, label tuples) on every new revision, for a series read once per scrape.
    """

    def __init__(self) -> None:
        self.held: dict[ConfigMapRef, tuple[str, int]] = {}

    def collect(self) -> Iterator[Metric]:
        revision = GaugeMetricFamily(
            "hotconf_sidecar_applied_revision_info",
            "1 for the revision of each ConfigMap this sidecar holds.",
            labels=["namespace", "name", "revision"],
        )
        sequence = GaugeMetricFamily(
            "hotconf_sidecar_applied_sequence",
            "Highest push sequence accepted for each ConfigMap.",
            labels=["namespace", "name"],
        )
        for ref, (rev, seq) in list(self.held.items()):
            revision.add_metric([ref.namespace, ref.name, rev], 1.0)
            sequence.add_metric([ref.namespace, ref.name], float(seq))
        yield revision
        yield sequence


class Metrics:
    """The sidecar's metrics; see the module docstring."""

    def __init__(self, *, clients: Callable[[], int]) -> None:
        # ``*_created`` series double the output and say nothing a scraper needs here. The switch
        # is process-wide; the sidecar process has no other prometheus-client user.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        # process_* (resident memory, CPU, open fds, start time): memory is a product target.
        ProcessCollector(registry=self.registry)
        self.build_info = Gauge(
            "hotconf_sidecar_build_info",
            "Always 1: the hotconf version and Python this sidecar runs.",
            ["version", "python_version"],
            registry=self.registry,
        )
        self.build_info.labels(__version__, platform.python_version()).set(1)
        self.accepted = Counter(
            "hotconf_sidecar_pushes_accepted",
            "Pushes accepted, by status (applied or unchanged).",
            ["status"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "hotconf_sidecar_pushes_rejected",
            "Pushes rejected, by reason.",
            ["reason"],
            registry=self.registry,
        )
        for reason in (*REJECT_REASONS, "unavailable", "internal"):
            self.rejected.labels(reason)
        for status in ("applied", "unchanged"):
            self.accepted.labels(status)
        self.relay_seconds = Histogram(
            "hotconf_sidecar_relay_seconds",
            "Seconds from publishing a revision to the relay to every client's verdict.",
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.clients = Gauge(
            "hotconf_sidecar_clients_connected",
            "Relay clients connected now.",
            registry=self.registry,
        )
        self.clients.set_function(lambda: float(clients()))
        self._held = _HeldCollector()
        self.registry.register(self._held)
        # The children every push updates, looked up once (``labels()`` costs a lock and a
        # tuple of label values per call).
        self.applied = self.accepted.labels("applied")
        self.unchanged = self.accepted.labels("unchanged")

    def held(self, ref: ConfigMapRef, revision: str, sequence: int) -> None:
        """Record that ``revision`` (at ``sequence``) is now held for ``ref``."""
        self._held.held[ref] = (revision, sequence)

    def render(self) -> bytes:
        return generate_latest(self.registry)
