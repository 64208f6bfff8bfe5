"""The operator's and the sidecar's metrics follow Prometheus' naming conventions.

Checked on what each component really exposes (its registry rendered in the text format, and
parsed back with the client library's parser), so that a metric added later is held to the same
rules: names in snake case under the component's prefix (or the standard ``process_``); every
counter's samples end in ``_total``; no ``*_created`` series; histograms and gauges of time or
size in base units (``_seconds``, ``_bytes``); a help text for every family; a ``build_info``
gauge of 1 naming the version; the standard ``process_*`` families (memory is a product target).
"""

from __future__ import annotations

import re

import pytest
from prometheus_client import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from hotconf_operator._metrics import Metrics as OperatorMetrics
from hotconf_sidecar._metrics import Metrics as SidecarMetrics
from hotconf_wire import __version__
from hotconf_wire.protocol import ConfigMapRef

NAME = re.compile(r"^[a-z][a-z0-9_]*$")
UNIT_WORDS = {"duration", "seconds", "latency", "time", "size", "bytes", "memory"}


def families(component: str) -> list[Metric]:
    if component == "operator":
        operator = OperatorMetrics()
        operator.pushes.labels(outcome="applied").inc()
        operator.rollout_seconds.labels(phase="complete").observe(0.01)
        text = generate_latest(operator.registry)
    else:
        sidecar = SidecarMetrics(clients=lambda: 1)
        sidecar.held(ConfigMapRef("shop", "app"), "sha256:ab", 7)
        sidecar.relay_seconds.observe(0.01)
        text = sidecar.render()
    return list(text_string_to_metric_families(text.decode()))


@pytest.mark.parametrize("component", ["operator", "sidecar"])
def test_metric_names_follow_the_conventions(component: str) -> None:
    found = families(component)
    prefix = f"hotconf_{component}_"
    assert any(f.name.startswith(prefix) for f in found), "no metric of the component at all"
    for family in found:
        assert NAME.match(family.name), family.name
        assert family.name.startswith((prefix, "process_")), family.name
        assert family.documentation, f"{family.name} has no help text"
        for sample in family.samples:
            assert not sample.name.endswith("_created"), sample.name
            if family.type == "counter":
                assert sample.name.endswith("_total"), sample.name
        if family.type == "histogram" or set(family.name.split("_")) & UNIT_WORDS:
            if family.type in ("histogram", "summary") or "duration" in family.name:
                assert family.name.endswith(("_seconds", "_bytes")), family.name


@pytest.mark.parametrize("component", ["operator", "sidecar"])
def test_build_info_and_process_metrics_are_exposed(component: str) -> None:
    found = {f.name: f for f in families(component)}
    info = found[f"hotconf_{component}_build_info"]
    [sample] = info.samples
    assert sample.value == 1 and sample.labels["version"] == __version__
    assert sample.labels["python_version"]
    assert {"process_resident_memory_bytes", "process_cpu_seconds", "process_open_fds"} <= set(
        found
    ), sorted(found)
