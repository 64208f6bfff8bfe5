"""Chart.yaml says what a chart repository and Artifact Hub need (home, sources, maintainers,
license and links annotations), its appVersion is the package's one version (pyproject.toml, as
installed: ``hotconf.__version__``), and values.yaml names its schema for editors (the
yaml-language-server modeline on its first line)."""

from __future__ import annotations

from typing import Any

import yaml

import hotconf


def metadata(chart) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((chart.path / "Chart.yaml").read_text())
    return loaded


def test_app_version_is_the_package_version(chart) -> None:
    assert metadata(chart)["appVersion"] == hotconf.__version__
    # And the default image tag follows it.
    deployment = chart.render().one("Deployment")
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"hotconf:{hotconf.__version__}"


def test_chart_yaml_has_repository_and_artifact_hub_metadata(chart) -> None:
    chart_yaml = metadata(chart)
    assert str(chart_yaml["home"]).startswith("https://")
    assert chart_yaml["sources"]
    assert all(str(s).startswith("https://") for s in chart_yaml["sources"])
    assert all(m.get("name") for m in chart_yaml["maintainers"])
    annotations = chart_yaml["annotations"]
    assert isinstance(annotations, dict)
    assert annotations["artifacthub.io/license"] == "Apache-2.0"
    links = yaml.safe_load(annotations["artifacthub.io/links"])
    assert all(link["name"] and link["url"].startswith("https://") for link in links)
    changes = yaml.safe_load(annotations["artifacthub.io/changes"])
    kinds = {"added", "changed", "deprecated", "removed", "fixed", "security"}
    assert changes and all(c["kind"] in kinds and c["description"] for c in changes)


def test_values_yaml_names_its_schema_for_editors(chart) -> None:
    first = (chart.path / "values.yaml").read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=values.schema.json"
    assert (chart.path / "values.schema.json").is_file()
