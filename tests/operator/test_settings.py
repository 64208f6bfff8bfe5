"""Operator settings: flags win over environment variables, defaults are sane, errors name the fix.

Proves: every documented environment variable is read; a flag overrides it; a missing signing
key, a malformed Secret reference, a bad number, a namespace pattern and a malformed pod label
selector are refused with the variable's name.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hotconf_operator._errors import SettingsError
from hotconf_operator._injection import INJECT_SELECTOR
from hotconf_operator._settings import parse_settings


def test_environment_then_flags() -> None:
    env = {
        "HOTCONF_NAMESPACES": "b, a",
        "HOTCONF_SIGNING_KEY_SECRET": "hotconf/signing",
        "HOTCONF_METRICS_PORT": "9100",
        "HOTCONF_STANDALONE": "true",
        "HOTCONF_PEERING_PRIORITY": "7",
        "HOTCONF_PEERING_LIFETIME": "15",
        "HOTCONF_PUSH_CONCURRENCY": "8",
        "HOTCONF_RECONCILE_INTERVAL": "45",
        "HOTCONF_SIDECAR_PORT": "9100",
    }
    config = parse_settings([], env)
    assert config.namespaces == ("a", "b")
    assert config.signing.key_secret == "hotconf/signing" and config.signing.key_file is None
    assert config.serving.metrics_port == 9100 and config.serving.health_port == 8080
    assert config.peering.standalone and config.peering.priority == 7
    assert config.peering.lifetime == 15
    assert parse_settings(["--peering-lifetime", "4"], env).peering.lifetime == 4
    assert config.push.concurrency == 8 and config.reconcile_interval == 45
    assert config.sidecar.port == 9100
    flags = parse_settings(
        ["--namespace", "c", "--metrics-port", "0", "--signing-key-file", "/k.pem"], env
    )
    assert flags.namespaces == ("c",) and flags.serving.metrics_port == 0
    assert flags.signing.key_file == Path("/k.pem")


def test_errors_name_the_setting() -> None:
    with pytest.raises(SettingsError, match="HOTCONF_SIGNING_KEY_FILE"):
        parse_settings([], {})
    with pytest.raises(SettingsError, match="NAMESPACE/NAME"):
        parse_settings([], {"HOTCONF_SIGNING_KEY_SECRET": "no-slash"})
    with pytest.raises(SettingsError, match="HOTCONF_PUSH_TIMEOUT"):
        parse_settings([], {"HOTCONF_SIGNING_KEY_FILE": "/k", "HOTCONF_PUSH_TIMEOUT": "soon"})
    with pytest.raises(SettingsError, match="HOTCONF_PEERING_LIFETIME"):
        parse_settings([], {"HOTCONF_SIGNING_KEY_FILE": "/k", "HOTCONF_PEERING_LIFETIME": "1"})
    with pytest.raises(SettingsError, match="HOTCONF_SIDECAR_PORT"):
        parse_settings(["--signing-key-file", "/k", "--sidecar-port", "0"], {})
    # Exact names only: kopf's namespace scanning, which patterns would need, is turned off.
    for pattern in ("team-*", "Team", "-a"):
        with pytest.raises(SettingsError, match="patterns are not supported"):
            parse_settings(["--signing-key-file", "/k", f"--namespace={pattern}"], {})


def test_sidecar_image_and_resources() -> None:
    base = {"HOTCONF_SIGNING_KEY_FILE": "/k"}
    assert parse_settings([], base).sidecar.image == ""
    assert parse_settings([], base).sidecar.resources is None
    env = {
        **base,
        "HOTCONF_SIDECAR_IMAGE": "r/hotconf:1",
        "HOTCONF_SIDECAR_RESOURCES": '{"requests": {"cpu": 1, "memory": "48Mi"}, "limits": {}}',
    }
    config = parse_settings([], env)
    assert config.sidecar.image == "r/hotconf:1"
    # Quantities are strings in Kubernetes; a bare JSON number becomes one.
    assert config.sidecar.resources == {"requests": {"cpu": "1", "memory": "48Mi"}, "limits": {}}
    flags = parse_settings(["--sidecar-resources", "{}", "--sidecar-image", "x"], env)
    # {} (the chart's `resources: {}`): a sidecar without requests or limits.
    assert flags.sidecar.resources == {} and flags.sidecar.image == "x"


@pytest.mark.parametrize(
    "raw", ["not json", "[]", '{"requets": {}}', '{"requests": {"cpu": true}}', '{"limits": 1}']
)
def test_bad_sidecar_resources_are_refused(raw: str) -> None:
    env = {"HOTCONF_SIGNING_KEY_FILE": "/k", "HOTCONF_SIDECAR_RESOURCES": raw}
    with pytest.raises(SettingsError, match="HOTCONF_SIDECAR_RESOURCES"):
        parse_settings([], env)


def test_sidecar_security_context_is_a_json_object_or_the_hardened_default() -> None:
    base = {"HOTCONF_SIGNING_KEY_FILE": "/k"}
    assert parse_settings([], base).sidecar.security_context is None
    given = '{"runAsNonRoot": true, "capabilities": {"drop": ["ALL"]}}'
    config = parse_settings([], {**base, "HOTCONF_SIDECAR_SECURITY_CONTEXT": given})
    assert config.sidecar.security_context == {
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    for raw in ("not json", "[]", '"restricted"'):
        with pytest.raises(SettingsError, match="HOTCONF_SIDECAR_SECURITY_CONTEXT"):
            parse_settings([], {**base, "HOTCONF_SIDECAR_SECURITY_CONTEXT": raw})


@pytest.mark.parametrize(
    "selector",
    [
        "hotconf.dev/inject=true",
        "app=web,tier!=cache",
        "hotconf.dev/inject in (true,yes), !legacy",
        "example.com/team notin (a, b),env",
        "*",
    ],
)
def test_the_pod_selector_takes_kubernetes_label_selectors(selector: str) -> None:
    config = parse_settings(["--signing-key-file", "/k", "--pod-selector", selector], {})
    assert config.pod_selector == selector


def test_the_pod_selector_defaults_to_the_opt_in_label() -> None:
    assert parse_settings(["--signing-key-file", "/k"], {}).pod_selector == INJECT_SELECTOR


@pytest.mark.parametrize("selector", ["=b", "a=b=c", "in (a)", "app in a,b", "(x)", "a b"])
def test_a_malformed_pod_selector_is_refused_naming_the_requirement(selector: str) -> None:
    with pytest.raises(SettingsError, match=r"HOTCONF_POD_SELECTOR.*not a label selector"):
        parse_settings([], {"HOTCONF_SIGNING_KEY_FILE": "/k", "HOTCONF_POD_SELECTOR": selector})
