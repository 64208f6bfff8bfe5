"""Every scenario in charts/hotconf/ci/ passes `helm lint --strict`, renders with `helm
template`, and every rendered object is valid for Kubernetes 1.29 (the oldest with native
sidecars) and for the newest version kubernetes-validate knows, in strict mode (unknown fields
are errors). Only the CRD kinds listed in FOREIGN_KINDS are not validated, by name; kopf's
peering kinds are checked against the chart's own crds/ (test_chart_ha.py), and those
CustomResourceDefinitions are validated here like every other object."""

from __future__ import annotations

import copy

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from packaging.version import Version

# Custom resources of other projects: kubernetes-validate has no schema for them.
FOREIGN_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("cert-manager.io/v1", "Certificate"),
    ("cert-manager.io/v1", "Issuer"),
}
# Custom resources whose CustomResourceDefinitions the chart ships in crds/.
OWN_KINDS = {
    ("kopf.dev/v1", "ClusterKopfPeering"),
    ("kopf.dev/v1", "KopfPeering"),
}
OLDEST = "1.29.0"
VERSIONS = [OLDEST, kubernetes_validate.latest_version()]


def test_validator_knows_the_newest_kubernetes() -> None:
    newest = Version(kubernetes_validate.latest_version())
    assert newest >= Version("1.37"), "update kubernetes-validate's pin"


def test_helm_lint_strict(chart, scenario: str) -> None:
    result = chart.run(
        "lint", "--strict", str(chart.path), "--values", str(chart.path / "ci" / scenario)
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("version", VERSIONS)
def test_rendered_objects_are_valid_kubernetes(chart, scenario: str, version: str) -> None:
    manifests = chart.scenario(scenario)
    assert manifests.of_kind("Deployment") or manifests.of_kind("Pod")
    checked = 0
    for manifest in manifests:
        key = (manifest["apiVersion"], manifest["kind"])
        if key in FOREIGN_KINDS | OWN_KINDS:
            continue
        name = f"{manifest['kind']}/{manifest['metadata']['name']}"
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(
                f"{scenario}: {name} invalid for {version} at {list(exc.path)}: {exc.message}"
            )
        except kubernetes_validate.SchemaNotFoundError as exc:
            pytest.fail(
                f"{scenario}: {name}: {exc.message} (add it to FOREIGN_KINDS only if a CRD)"
            )
        checked += 1
    assert checked >= 3  # the Deployment, its Service and the helm test pod at least


@pytest.mark.parametrize("version", VERSIONS)
def test_shipped_crds_are_valid_kubernetes(chart, version: str) -> None:
    crds = [
        doc
        for path in sorted((chart.path / "crds").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]
    assert {(c["spec"]["group"] + "/v1", c["spec"]["names"]["kind"]) for c in crds} == OWN_KINDS
    for crd in crds:
        kubernetes_validate.validate(crd, version, strict=True)


def test_strict_validation_rejects_an_unknown_field(chart) -> None:
    # Proves the validation above can fail: the default Deployment with one unknown field.
    deployment = copy.deepcopy(chart.scenario("default-values.yaml").one("Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["restartPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, OLDEST, strict=True)


def test_every_scenario_renders_the_helm_test_pod(chart, scenario: str) -> None:
    pods = chart.scenario(scenario).of_kind("Pod")
    assert [pod["metadata"]["annotations"]["helm.sh/hook"] for pod in pods] == ["test"]
