"""Rendering the chart twice gives byte-identical output, in every scenario (issue 11, item 3).

Argo CD, Flux and every `helm template` pipeline render the chart on each sync without `lookup`
(it answers nothing there). A template that generates key material (`genPrivateKey`, `genCA`,
`randAlphaNum`) then makes a new signing key or webhook CA on every render, and each sync
replaces what running sidecars and the API server trust. So nothing is generated at render
time: the operator creates its signing key Secret and its webhook certificate Secret when they
are missing and keeps them (tests/e2e/test_gitops_sync.py runs the whole flow on a real API
server). Proves, for each values file in ci/: two `helm template` runs print the same bytes, and
nothing that a render could generate (a Secret, a caBundle) is in them.
"""

from __future__ import annotations

import yaml


def test_two_renders_are_byte_identical(chart, scenario: str) -> None:
    args = ("--values", str(chart.path / "ci" / scenario))
    first, second = chart.template(*args), chart.template(*args)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert first.stdout == second.stdout, f"{scenario}: two renders differ"


def test_nothing_generated_is_rendered(chart, scenario: str) -> None:
    result = chart.template("--values", str(chart.path / "ci" / scenario))
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert not [d["metadata"]["name"] for d in docs if d["kind"] == "Secret"]
    for doc in docs:
        if doc["kind"] == "MutatingWebhookConfiguration":
            for webhook in doc["webhooks"]:
                assert "caBundle" not in webhook["clientConfig"], scenario
