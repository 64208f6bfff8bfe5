"""The krew plugin manifest, plugins/hotconf.yaml, has the shape krew takes and agrees with us.

Proves: it is a krew ``v1alpha2`` Plugin named ``hotconf`` (so ``kubectl hotconf``), its version
is pyproject.toml's with krew's ``v`` prefix, every platform selects an OS and names an archive
(https), a sha256 of 64 hex digits and ``kubectl-hotconf`` as the binary that the archive's
files put in place; the descriptions state the exit statuses ``--wait`` documents. It does not
prove the archive exists: there is no binary release yet (the manifest says so).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = yaml.safe_load((ROOT / "plugins" / "hotconf.yaml").read_text())


def test_it_is_a_krew_plugin_named_hotconf() -> None:
    assert MANIFEST["apiVersion"] == "krew.googlecontainertools.github.com/v1alpha2"
    assert MANIFEST["kind"] == "Plugin"
    assert MANIFEST["metadata"]["name"] == "hotconf"
    spec = MANIFEST["spec"]
    assert {"version", "homepage", "shortDescription", "description", "platforms"} <= set(spec)
    assert len(spec["shortDescription"]) <= 50  # krew-index's guideline


def test_its_version_is_the_projects() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert MANIFEST["spec"]["version"] == f"v{version}"


def test_every_platform_installs_kubectl_hotconf() -> None:
    platforms = MANIFEST["spec"]["platforms"]
    assert platforms
    for platform in platforms:
        selector = platform["selector"]
        assert selector.get("matchLabels", {}).get("os") or any(
            e["key"] == "os" for e in selector.get("matchExpressions", [])
        ), selector
        assert platform["uri"].startswith("https://"), platform["uri"]
        assert re.fullmatch(r"[0-9a-f]{64}", platform["sha256"]), platform["sha256"]
        assert platform["bin"] == "kubectl-hotconf"
        assert {"from": "kubectl-hotconf", "to": "."} in platform["files"]


def test_it_documents_the_wait_exit_statuses() -> None:
    description = " ".join(MANIFEST["spec"]["description"].split())
    for said in ("0 applied", "4 halted or rejected", "3 timed out", "1 error"):
        assert said in description, said
