"""docs/integrations/ says what the injection does with the adapter annotations.

Proves: each adapter annotation is documented on its page, in docs/operator.md and in the
integrations index; the warning the index quotes is the one the injection gives for that value;
every relative link of the integration pages, and those pointing at them, leads to a file (and a
heading, for an ``#anchor``) that exists; the application files the pages quote from exist.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hotconf_operator import _adapter_annotations as adapters
from hotconf_operator._injection import InjectionSettings, inject

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted((ROOT / "docs" / "integrations").glob("*.md"))
LINKING = [ROOT / "README.md", ROOT / "docs" / "sidecar.md", ROOT / "docs" / "operator.md"]


def _anchors(page: Path) -> set[str]:
    headings = re.findall(r"^#+ (.+)$", page.read_text(), re.M)
    return {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}


@pytest.mark.parametrize(
    ("annotation", "page"),
    [
        (adapters.FILES_ANNOTATION, "files.md"),
        (adapters.NOTIFY_URL_ANNOTATION, "notify-url.md"),
        (adapters.SIGNAL_ANNOTATION, "signal.md"),
        (adapters.SIGNAL_PROCESS_ANNOTATION, "signal.md"),
    ],
)
def test_each_annotation_is_documented(annotation: str, page: str) -> None:
    index = ROOT / "docs" / "integrations" / "README.md"
    for document in (ROOT / "docs" / "integrations" / page, ROOT / "docs" / "operator.md", index):
        assert f"`{annotation}: " in document.read_text(), f"{annotation} is not in {document}"


def test_the_quoted_warning_is_the_injections() -> None:
    text = (ROOT / "docs" / "integrations" / "README.md").read_text()
    [quoted] = re.findall(r"^Warning: (hotconf: .+)$", text, re.M)
    value = re.search(r"notify-url=('[^']*')", quoted)
    assert value is not None
    pod = {"metadata": {"labels": {"hotconf.dev/inject": "true"},
                        "annotations": {adapters.NOTIFY_URL_ANNOTATION: value.group(1)[1:-1]}},
           "spec": {"containers": [{"name": "app"}]}}  # fmt: skip
    warnings: list[str] = []
    inject(pod, InjectionSettings(image="i", public_key_pem="k"), warnings=warnings)
    assert warnings == [quoted]


@pytest.mark.parametrize("page", PAGES + LINKING, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_lead_somewhere(page: Path) -> None:
    for target in re.findall(r"\]\(([^)]+)\)", page.read_text()):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.exists(), f"{page.name}: {target} leads nowhere"
        if path.endswith(("/",)):
            resolved = resolved / "README.md"
        if anchor:
            assert anchor in _anchors(resolved), f"{page.name}: no heading #{anchor} in {path}"


def test_quoted_applications_exist() -> None:
    for page in PAGES:
        for quoted in re.findall(r"`(tests/[\w/.]+)`", page.read_text()):
            assert (ROOT / quoted).exists(), f"{page.name} quotes {quoted}, which is gone"
