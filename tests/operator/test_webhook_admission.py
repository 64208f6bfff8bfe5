"""The real ``hotconf-operator`` serves the injection webhook: AdmissionReview requests sent over
HTTPS to the operator process (on the test control plane, with its signing key, webhook port and
certificate directory) come back with a JSON patch that, applied to the pod, injects the sidecar
carrying the public half of the operator's own signing key and the resources from
``--sidecar-resources``, listening on ``--sidecar-port`` or the pod's own ``hotconf.dev/port``
(a malformed one is replaced, with an admission warning); a pod labelled
``hotconf.dev/inject: "true"`` is injected without warnings, one with only the legacy annotation
with a warning naming the label; an injected pod and a pod that does not ask come back allowed
with no patch; malformed reviews never inject and leave the server serving; injections (not dry
runs) are counted in ``/metrics``. Without a sidecar image the webhook admits such pods
unchanged with an admission warning that says why."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hotconf_e2e.webhook import Operator, Webhook, make_pod, running_operator

RESOURCES = {"requests": {"cpu": "20m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}


@pytest.fixture(scope="module")
def operator(
    tmp_path_factory: pytest.TempPathFactory, control_plane: Any, chart_release: Any
) -> Iterator[Operator]:
    with running_operator(
        tmp_path_factory.mktemp("webhook"),
        "--sidecar-image", "registry.example/hotconf:1",
        "--sidecar-resources", json.dumps(RESOURCES),
        "--sidecar-port", "8795",
        control_plane=control_plane,
        release=chart_release,
    ) as running:  # fmt: skip
        yield running


#: The opt-in: the label the chart's objectSelector sends to the webhook.
OPT_IN = {"hotconf.dev/inject": "true"}


@pytest.fixture
def webhook(operator: Operator) -> Webhook:
    return operator.hook


def test_annotated_pod_is_injected_and_injection_is_idempotent(operator: Operator) -> None:
    before = operator.metric("hotconf_operator_injections_total")
    pod = make_pod({"hotconf.dev/configmaps": "web-config"}, labels=OPT_IN)
    response, injected = operator.hook.admit(pod)
    assert not response.get("warnings"), response
    assert [c["name"] for c in injected["spec"]["initContainers"]] == ["hotconf-sidecar"]
    sidecar = injected["spec"]["initContainers"][0]
    assert sidecar["restartPolicy"] == "Always"
    assert sidecar["image"] == "registry.example/hotconf:1"
    assert sidecar["resources"] == RESOURCES
    env = {e["name"]: e.get("value") for e in sidecar["env"]}
    # The sidecar verifies pushes with the public half of the key the operator signs with.
    assert env["HOTCONF_OPERATOR_PUBLIC_KEY"] == operator.public_key_pem
    app_env = injected["spec"]["containers"][0]["env"]
    assert {"name": "HOTCONF_SOCKET", "value": "/run/hotconf/hotconf.sock"} in app_env
    assert operator.metric("hotconf_operator_injections_total") == before + 1

    response, again = operator.hook.admit(injected)
    assert "patch" not in response
    assert again == injected
    assert operator.metric("hotconf_operator_injections_total") == before + 1


def test_the_sidecar_port_is_the_operators_or_the_pods(operator: Operator) -> None:
    annotations = {"hotconf.dev/configmaps": "web-config"}
    cases = ((None, 8795, False), ("9000", 9000, False), ("web", 8795, True))
    for chosen, expected, warned in cases:
        pod = make_pod(
            {**annotations, **({"hotconf.dev/port": chosen} if chosen else {})}, labels=OPT_IN
        )
        response, injected = operator.hook.admit(pod)
        env = {e["name"]: e.get("value") for e in injected["spec"]["initContainers"][0]["env"]}
        assert env["HOTCONF_LISTEN"] == f"0.0.0.0:{expected}"
        assert injected["metadata"]["annotations"]["hotconf.dev/port"] == str(expected)
        warnings = [w for w in response.get("warnings", []) if "hotconf.dev/port" in w]
        assert bool(warnings) is warned, response


def test_a_dry_run_is_injected_but_not_counted(operator: Operator) -> None:
    before = operator.metric("hotconf_operator_injections_total")
    _, injected = operator.hook.admit(make_pod({}, labels=OPT_IN), dry_run=True)
    assert injected["spec"]["initContainers"][0]["name"] == "hotconf-sidecar"
    assert operator.metric("hotconf_operator_injections_total") == before


@pytest.mark.parametrize(
    ("annotations", "labels"),
    [
        ({"hotconf.dev/configmaps": "web-config"}, {}),
        ({}, {}),
        ({}, {"hotconf.dev/inject": "false"}),
    ],
)
def test_a_pod_that_does_not_ask_is_untouched(
    webhook: Webhook, annotations: dict[str, str], labels: dict[str, str]
) -> None:
    pod = make_pod(annotations, labels=labels)
    response, same = webhook.admit(pod)
    assert "patch" not in response
    assert same == pod


def test_the_legacy_annotation_still_injects_with_a_warning_naming_the_label(
    webhook: Webhook,
) -> None:
    # Only reaches the webhook when the chart sends every pod (legacyAnnotationOptIn).
    response, injected = webhook.admit(make_pod({"hotconf.dev/inject": "true"}))
    assert injected["spec"]["initContainers"][0]["name"] == "hotconf-sidecar"
    warnings = response.get("warnings", [])
    assert any("deprecated" in w and 'hotconf.dev/inject: "true"' in w for w in warnings), response


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"kind": "AdmissionReview"}', json.dumps({"request": {}}).encode()],
)
def test_malformed_reviews_never_inject(webhook: Webhook, body: bytes) -> None:
    status, answer = webhook.post(body)
    assert "patch" not in answer.get("response", {})
    # kopf answers 400 for what is not JSON and 500 for JSON that is not a review; either way the
    # API server, with failurePolicy Ignore, creates the pod as it was: nothing is injected.
    assert status in (400, 500), (status, answer)
    # The server still answers a good review afterwards.
    _, injected = webhook.admit(make_pod({}, labels=OPT_IN))
    assert injected["spec"]["initContainers"][0]["name"] == "hotconf-sidecar"


def test_without_a_sidecar_image_nothing_is_injected_and_the_review_says_why(
    tmp_path: Path, control_plane: Any, chart_release: Any
) -> None:
    with running_operator(tmp_path, control_plane=control_plane, release=chart_release) as operator:
        pod = make_pod({}, labels=OPT_IN)
        response, same = operator.hook.admit(pod)
        assert "patch" not in response and same == pod
        assert response["allowed"] is True
        assert any("HOTCONF_SIDECAR_IMAGE" in w for w in response.get("warnings", [])), response
        assert operator.metric("hotconf_operator_injections_total") == 0
