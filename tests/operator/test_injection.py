"""Sidecar injection as a pure function: a pod labelled ``hotconf.dev/inject: "true"`` gets a
native sidecar, the socket volume, HOTCONF_SOCKET and a restricted security context (one with only
the legacy annotation too, with a warning naming the label); the sidecar listens on the pod's
``hotconf.dev/port`` or the configured default (a malformed port falls back to it, with a
warning); injecting twice changes nothing; pods that do not ask are untouched; and the result
round-trips as a JSON patch."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import jsonpatch
import pytest

from hotconf_operator._injection import (
    INJECTED_LABEL,
    SIDECAR_NAME,
    InjectionSettings,
    hardened_security_context,
    inject,
    injected_copy,
    wants_injection,
)
from hotconf_wire.envelope import DEFAULT_PORT

SETTINGS = InjectionSettings(image="registry.example/hotconf:1.0", public_key_pem="PEM")


def pod(
    annotations: dict[str, str] | None = None,
    *,
    labels: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A pod; ``annotations`` with ``hotconf.dev/inject`` among them also gets it as a label
    (the opt-in), unless ``labels`` are given."""
    annotations = dict(annotations or {})
    if labels is None:
        labels = {}
        if "hotconf.dev/inject" in annotations:
            labels["hotconf.dev/inject"] = annotations.pop("hotconf.dev/inject")
    metadata = {"name": "web", "namespace": "shop", "labels": labels, "annotations": annotations}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"containers": [{"name": "app", "image": "app:1"}], **spec},
    }


ANNOTATED = {"hotconf.dev/inject": "true", "hotconf.dev/configmaps": "web-config"}


def test_annotated_pod_gets_a_native_sidecar() -> None:
    result = injected_copy(pod(ANNOTATED), SETTINGS)
    [sidecar] = result["spec"]["initContainers"]
    assert sidecar["name"] == SIDECAR_NAME
    assert sidecar["restartPolicy"] == "Always"
    assert sidecar["image"] == SETTINGS.image
    env = {e["name"]: e for e in sidecar["env"]}
    assert env["HOTCONF_POD_UID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.uid"
    assert env["HOTCONF_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["HOTCONF_OPERATOR_PUBLIC_KEY"]["value"] == "PEM"
    assert sidecar["resources"]["requests"]["memory"]
    security = sidecar["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    [app] = result["spec"]["containers"]
    assert {"name": "HOTCONF_SOCKET", "value": "/run/hotconf/hotconf.sock"} in app["env"]
    assert any(m["name"] == "hotconf-socket" for m in app["volumeMounts"])
    assert {v["name"] for v in result["spec"]["volumes"]} == {"hotconf-socket", "hotconf-state"}


def test_sidecar_goes_before_existing_init_containers() -> None:
    result = injected_copy(pod(ANNOTATED, initContainers=[{"name": "migrate"}]), SETTINGS)
    assert [c["name"] for c in result["spec"]["initContainers"]] == [SIDECAR_NAME, "migrate"]


def test_injection_is_idempotent() -> None:
    once = injected_copy(pod(ANNOTATED), SETTINGS)
    twice = copy.deepcopy(once)
    assert inject(twice, SETTINGS) is False
    assert twice == once


@pytest.mark.parametrize(
    "annotations", [{}, {"hotconf.dev/inject": "false"}, {"hotconf.dev/configmaps": "x"}]
)
def test_pods_that_do_not_ask_are_untouched(annotations: dict[str, str]) -> None:
    original = pod(annotations)
    result = injected_copy(original, SETTINGS)
    assert result == original
    assert not wants_injection(original)


def test_the_label_asks_without_a_warning() -> None:
    labelled = pod({"hotconf.dev/configmaps": "x"}, labels={"hotconf.dev/inject": "true"})
    warnings: list[str] = []
    assert inject(labelled, SETTINGS, warnings=warnings) is True
    assert warnings == []


def test_the_legacy_annotation_asks_with_a_warning_naming_the_label() -> None:
    annotated = pod({"hotconf.dev/inject": "true"}, labels={})
    warnings: list[str] = []
    assert inject(annotated, SETTINGS, warnings=warnings) is True
    assert annotated["spec"]["initContainers"][0]["name"] == SIDECAR_NAME
    [warning] = warnings
    assert (
        "deprecated" in warning and 'label the pod template hotconf.dev/inject: "true"' in warning
    )


def test_a_label_saying_false_wins_over_the_annotation() -> None:
    # The label is the opt-in now: "false" there means no, whatever the old annotation says.
    original = pod({"hotconf.dev/inject": "true"}, labels={"hotconf.dev/inject": "false"})
    assert not wants_injection(original)


def test_socket_mode_follows_fs_group() -> None:
    def mode(result: dict[str, Any]) -> str:
        env = result["spec"]["initContainers"][0]["env"]
        return str(next(e["value"] for e in env if e["name"] == "HOTCONF_SOCKET_MODE"))

    assert (
        mode(injected_copy(pod(ANNOTATED, securityContext={"fsGroup": 2000}), SETTINGS)) == "0660"
    )
    assert mode(injected_copy(pod(ANNOTATED), SETTINGS)) == "0666"


def test_result_is_expressible_as_a_json_patch() -> None:
    original = pod(ANNOTATED, volumes=[{"name": "data", "emptyDir": {}}])
    result = injected_copy(original, SETTINGS)
    ops = jsonpatch.JsonPatch.from_diff(original, result)
    assert jsonpatch.apply_patch(original, ops) == result
    assert {"name": "data", "emptyDir": {}} in result["spec"]["volumes"]


def listening_port(result: dict[str, Any]) -> set[object]:
    """Every place the injected sidecar states its port (env, container port, probes)."""
    [sidecar] = result["spec"]["initContainers"]
    env = {e["name"]: e.get("value") for e in sidecar["env"]}
    return {
        int(str(env["HOTCONF_LISTEN"]).rsplit(":", 1)[1]),
        sidecar["ports"][0]["containerPort"],
        sidecar["readinessProbe"]["httpGet"]["port"],
        sidecar["livenessProbe"]["httpGet"]["port"],
        int(result["metadata"]["annotations"]["hotconf.dev/port"]),
    }


def test_sidecar_port_is_the_pods_choice_or_the_default() -> None:
    assert listening_port(injected_copy(pod(ANNOTATED), SETTINGS)) == {DEFAULT_PORT}
    configured = dataclasses.replace(SETTINGS, port=9100)
    assert listening_port(injected_copy(pod(ANNOTATED), configured)) == {9100}
    chosen = pod({**ANNOTATED, "hotconf.dev/port": "8800"})
    assert listening_port(injected_copy(chosen, configured)) == {8800}


@pytest.mark.parametrize("raw", ["http", "0", "70000", "-1", ""])
def test_a_malformed_port_falls_back_to_the_default_with_a_warning(raw: str) -> None:
    warnings: list[str] = []
    result = pod({**ANNOTATED, "hotconf.dev/port": raw})
    assert inject(result, SETTINGS, warnings=warnings)
    assert listening_port(result) == {DEFAULT_PORT}
    [warning] = warnings
    assert "hotconf.dev/port" in warning and repr(raw) in warning and str(DEFAULT_PORT) in warning


def test_the_sidecar_is_hardened_unless_a_security_context_is_given() -> None:
    [sidecar] = injected_copy(pod(ANNOTATED), SETTINGS)["spec"]["initContainers"]
    assert sidecar["securityContext"] == hardened_security_context(65532)
    assert sidecar["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    own = {"runAsNonRoot": True, "allowPrivilegeEscalation": False}
    settings = dataclasses.replace(SETTINGS, security_context=own)
    [sidecar] = injected_copy(pod(ANNOTATED), settings)["spec"]["initContainers"]
    assert sidecar["securityContext"] == own
    sidecar["securityContext"]["runAsUser"] = 0  # each pod gets its own copy
    assert settings.security_context == own


def test_injected_pods_carry_a_label_a_pod_monitor_can_select() -> None:
    result = injected_copy(pod(ANNOTATED), SETTINGS)
    assert result["metadata"]["labels"] == {"hotconf.dev/inject": "true", INJECTED_LABEL: "true"}
    assert injected_copy(pod({}), SETTINGS)["metadata"]["labels"] == {}
