"""Fixtures for the packaging tests: helm, and the chart rendered once per scenario.

`chart` runs helm on charts/hotconf and returns `Manifests` (the parsed documents, with lookups
by kind). helm comes from `<repo>/.tools/bin/helm` (put there by scripts/fetch-tools) or from
PATH. Without it the chart tests fail under CI (environment variable CI set) and are skipped
locally, saying why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "hotconf"
SCENARIOS = sorted(path.name for path in (CHART / "ci").glob("*.yaml"))

Manifest = dict[str, Any]


def find_helm() -> Path | None:
    """The repository's own helm first, then one on PATH."""
    local = REPO / ".tools" / "bin" / "helm"
    if local.is_file() and os.access(local, os.X_OK):
        return local
    found = shutil.which("helm")
    return Path(found) if found else None


class Manifests(list[Manifest]):
    """The documents of one `helm template` run, with lookups by kind."""

    def of_kind(self, kind: str) -> list[Manifest]:
        return [m for m in self if m["kind"] == kind]

    def one(self, kind: str) -> Manifest:
        found = self.of_kind(kind)
        assert len(found) == 1, f"expected one {kind}, found {len(found)}"
        return found[0]

    def pod_specs(self) -> list[tuple[str, Manifest]]:
        """Every pod spec rendered: (object name, pod spec)."""
        specs = []
        for manifest in self:
            if manifest["kind"] == "Pod":
                specs.append((manifest["metadata"]["name"], manifest["spec"]))
            elif manifest["kind"] in {"Deployment", "DaemonSet", "StatefulSet", "Job"}:
                specs.append((manifest["metadata"]["name"], manifest["spec"]["template"]["spec"]))
        return specs


@dataclass(frozen=True)
class HelmResult:
    """One helm run: its exit code and what it printed."""

    returncode: int
    stdout: str
    stderr: str


class Chart:
    """charts/hotconf driven by a real helm binary; renders are cached per argument list."""

    release = "hotconf"
    namespace = "hotconf-system"
    path = CHART

    def __init__(self, helm: Path) -> None:
        self.helm = helm
        self._renders: dict[tuple[str, ...], Manifests] = {}

    def run(self, *args: str) -> HelmResult:
        done = subprocess.run(
            [str(self.helm), *args], capture_output=True, text=True, timeout=60, check=False
        )
        return HelmResult(done.returncode, done.stdout, done.stderr)

    def template(self, *values_args: str) -> HelmResult:
        return self.run(
            "template", self.release, str(CHART), "--namespace", self.namespace, *values_args
        )

    def render(self, *values_args: str) -> Manifests:
        """`helm template` (helm test pod included), parsed; fails the test if helm fails."""
        if values_args not in self._renders:
            result = self.template(*values_args)
            assert result.returncode == 0, f"helm template {values_args} failed:\n{result.stderr}"
            docs = Manifests(doc for doc in yaml.safe_load_all(result.stdout) if doc)
            self._renders[values_args] = docs
        return self._renders[values_args]

    def scenario(self, name: str) -> Manifests:
        """The chart rendered with charts/hotconf/ci/<name>."""
        return self.render("--values", str(CHART / "ci" / name))


@pytest.fixture(scope="session")
def chart() -> Chart:
    helm = find_helm()
    if helm is None:
        reason = "helm not found in .tools/bin/ or on PATH (scripts/fetch-tools puts it there)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}: CI must run the chart tests")
        pytest.skip(reason)
    return Chart(helm)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test that takes `scenario` runs once per values file in charts/hotconf/ci/, unless it
    names its scenarios itself with @pytest.mark.parametrize."""
    explicit = any(
        "scenario" in str(marker.args[0])
        for marker in metafunc.definition.iter_markers("parametrize")
    )
    if "scenario" in metafunc.fixturenames and not explicit:
        assert SCENARIOS, "charts/hotconf/ci/ holds no scenario values files"
        metafunc.parametrize("scenario", SCENARIOS)
