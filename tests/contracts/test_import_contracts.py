"""The import contracts in ``.importlinter`` hold, and they would catch the breaks they are for.

Proves: the lists in the forbidden contracts are complete (every private module of the
application library is forbidden to the operator; every third-party dependency in
``pyproject.toml`` is forbidden to the wire); and on a copy of the source tree with one import
added on purpose, ``lint-imports`` fails and names the contract that broke: the sidecar loading
the application library, a layer of the operator reaching up, a third-party import in the wire,
a wire module importing one above it, and a client layer reaching up.
"""

from __future__ import annotations

import configparser
import importlib
import importlib.metadata
import os
import pkgutil
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("wire", "client", "sidecar", "operator")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def contract(name: str) -> configparser.SectionProxy:
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    return config[f"importlinter:contract:{name}"]


def listed(section: configparser.SectionProxy, key: str) -> set[str]:
    return {line.strip() for line in section[key].splitlines() if line.strip()}


def test_every_private_module_of_hotconf_is_forbidden_to_the_operator() -> None:
    hotconf = importlib.import_module("hotconf")
    private = {
        f"hotconf.{info.name}"
        for info in pkgutil.iter_modules(hotconf.__path__)
        if info.name.startswith("_") and info.name != "__main__"
    }
    assert private, "found no private module: the walk is broken"
    forbidden = listed(contract("operator-uses-public-hotconf"), "forbidden_modules")
    assert private <= forbidden, f"add {sorted(private - forbidden)} to the contract"


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s;<>=!~\[]", requirement, maxsplit=1)[0]


def test_every_dependency_is_forbidden_to_the_wire() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra, items in project["optional-dependencies"].items():
        if extra not in ("all", "dev"):
            requirements += items
    distributions = {_requirement_name(r).lower().replace("_", "-") for r in requirements}
    modules = {
        module
        for module, dists in importlib.metadata.packages_distributions().items()
        if any(d.lower().replace("_", "-") in distributions for d in dists)
        and not module.startswith("_")
        and module.isidentifier()
    }
    assert {"yaml", "cryptography", "kopf"} <= modules, "the dependency walk is broken"
    forbidden = listed(contract("wire-stands-alone"), "forbidden_modules")
    assert modules <= forbidden, f"add {sorted(modules - forbidden)} to wire-stands-alone"


def lint_copy(tmp_path: Path, module_file: str, line: str) -> subprocess.CompletedProcess[str]:
    """Run lint-imports on a copy of the tree where ``module_file`` also imports ``line``."""
    for source in SOURCES:
        shutil.copytree(
            ROOT / source, tmp_path / source, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    target = tmp_path / module_file
    text = target.read_text()
    # After the module docstring and ``from __future__``, where an import would really go.
    anchor = "from __future__ import annotations\n"
    assert anchor in text, module_file
    target.write_text(text.replace(anchor, anchor + line + "\n", 1))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(str(tmp_path / s) for s in SOURCES),
        "COLUMNS": "500",  # one line per contract in the report
    }
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_unchanged_copy_passes(tmp_path: Path) -> None:
    """The baseline of the breaks below: the copy itself, with a harmless import, is clean."""
    done = lint_copy(tmp_path, "wire/hotconf_wire/protocol.py", "import json as _unused")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "BROKEN" not in done.stdout


@pytest.mark.parametrize(
    ("module_file", "line", "contract_name"),
    [
        (
            "sidecar/hotconf_sidecar/_sidecar.py",
            "import hotconf._manifest",
            "The sidecar builds on the wire alone",
        ),
        (
            "operator/hotconf_operator/_status.py",
            "import hotconf_operator._rollout",
            "Operator layers",
        ),
        ("wire/hotconf_wire/protocol.py", "import cryptography", "The wire imports no part"),
        ("wire/hotconf_wire/protocol.py", "import hotconf_wire.relay", "Wire layers"),
        ("wire/hotconf_wire/envelope.py", "import hotconf", "The wire imports no part"),
        ("client/hotconf/_config.py", "import hotconf._runners._api", "Client layers"),
        ("operator/hotconf_operator/_rollout.py", "import hotconf._config", "The operator uses"),
    ],
    ids=[
        "sidecar-loads-client",
        "operator-layer-reaches-up",
        "wire-imports-third-party",
        "wire-layer-reaches-up",
        "wire-imports-client",
        "client-layer-reaches-up",
        "operator-uses-client-internals",
    ],
)
def test_a_deliberate_break_is_caught(
    tmp_path: Path, module_file: str, line: str, contract_name: str
) -> None:
    done = lint_copy(tmp_path, module_file, line)
    assert done.returncode != 0, done.stdout
    broken = [row for row in done.stdout.splitlines() if row.endswith("BROKEN")]
    assert any(row.startswith(contract_name) for row in broken), done.stdout
