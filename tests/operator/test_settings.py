"""Operator settings: flags win over environment variables, defaults are sane, errors name the fix.

Proves: every documented environment variable is read; a flag overrides it; a missing signing
key, a malformed Secret reference and a bad number are refused with the variable's name.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hotconf_operator._errors import SettingsError
from hotconf_operator._settings import parse_settings


def test_environment_then_flags() -> None:
    env = {
        "HOTCONF_NAMESPACES": "b, a",
        "HOTCONF_SIGNING_KEY_SECRET": "hotconf/signing",
        "HOTCONF_METRICS_PORT": "9100",
        "HOTCONF_STANDALONE": "true",
        "HOTCONF_PEERING_PRIORITY": "7",
        "HOTCONF_PUSH_CONCURRENCY": "8",
        "HOTCONF_RECONCILE_INTERVAL": "45",
    }
    config = parse_settings([], env)
    assert config.namespaces == ("a", "b")
    assert config.signing.key_secret == "hotconf/signing" and config.signing.key_file is None
    assert config.serving.metrics_port == 9100 and config.serving.health_port == 8080
    assert config.peering.standalone and config.peering.priority == 7
    assert config.push.concurrency == 8 and config.reconcile_interval == 45
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
